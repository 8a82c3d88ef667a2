/**
 * A notebook the server cannot open (not JSON, JSON that is not a notebook) gets
 * JupyterLab's own error dialog with the server's reason, and its tab closes.
 *
 * The stock collaborative frontend asks for a session (`PUT /api/collaboration/session`),
 * and when that fails it only logs a warning and keeps "Loading" (its dialog offers to wait
 * or retry, forever, and again on every page load while the tab is in the workspace). So for
 * every notebook tab this asks the server whether it can open the notebook
 * (`GET …/notebooks/{path}?records=false`, which opens it, as the session does).
 */
import { showErrorMessage } from '@jupyterlab/apputils';
import { PathExt } from '@jupyterlab/coreutils';
import { INotebookTracker, NotebookPanel } from '@jupyterlab/notebook';
import { Contents, ServerConnection } from '@jupyterlab/services';
import { TranslationBundle } from '@jupyterlab/translation';

import { ApiError, notebookUrl, requestJSON } from './api';

/**
 * Statuses the stock frontend reports itself (its contents request fails the same way):
 * not logged in, not allowed, no such file.
 */
const REPORTED_BY_JUPYTERLAB = new Set([401, 403, 404]);

export function reportUnopenableNotebooks(
  notebooks: INotebookTracker,
  contents: Contents.IManager,
  settings: ServerConnection.ISettings,
  trans: TranslationBundle
): void {
  notebooks.widgetAdded.connect((_, panel) => {
    void check(panel, contents, settings, trans);
  });
}

async function check(
  panel: NotebookPanel,
  contents: Contents.IManager,
  settings: ServerConnection.ISettings,
  trans: TranslationBundle
): Promise<void> {
  const path = contents.localPath(panel.context.path);
  try {
    await requestJSON(settings, notebookUrl(settings, path) + '?records=false');
  } catch (error) {
    if (!(error instanceof ApiError)) {
      // the server is unreachable: JupyterLab shows its own connection-lost dialog
      console.warn(`jupyter-cocalc-sync: could not ask about ${path}`, error);
      return;
    }
    if (REPORTED_BY_JUPYTERLAB.has(error.status) || panel.isDisposed) {
      return;
    }
    // closing the tab also ends its document's connection (and the "Loading" dialog)
    panel.dispose();
    await showErrorMessage(
      trans.__('File Load Error for %1', PathExt.basename(path)),
      error.message
    );
  }
}
