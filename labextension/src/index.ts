/**
 * The JupyterLab side of jupyter-cocalc-sync: what stock JupyterLab cannot show for a
 * notebook the server owns and runs.
 *
 * - an input box for the `input()` / `getpass()` of a server-run cell, in every tab;
 * - the overflow of a truncated output, in place and paged;
 * - JupyterLab's error dialog for a notebook the server cannot open;
 * - the server's reason when no kernel can start (e.g. its kernel gateway is down).
 */
import {
  JupyterFrontEnd,
  JupyterFrontEndPlugin
} from '@jupyterlab/application';
import { INotebookTracker } from '@jupyterlab/notebook';
import { IRenderMimeRegistry } from '@jupyterlab/rendermime';
import { ITranslator, nullTranslator } from '@jupyterlab/translation';

import { inputRequestFactory } from './inputRequest';
import { reportUnavailableKernels } from './kernelErrors';
import { CellLocator } from './location';
import { moreOutputFactory } from './moreOutput';
import { reportUnopenableNotebooks } from './openErrors';

const plugin: JupyterFrontEndPlugin<void> = {
  id: 'jupyter-cocalc-sync:plugin',
  description:
    'Input boxes for server-run cells, truncated output in place, errors opening notebooks.',
  autoStart: true,
  requires: [IRenderMimeRegistry, INotebookTracker],
  optional: [ITranslator],
  activate: (
    app: JupyterFrontEnd,
    rendermime: IRenderMimeRegistry,
    notebooks: INotebookTracker,
    translator: ITranslator | null
  ): void => {
    const trans = (translator ?? nullTranslator).load('jupyterlab');
    const contents = app.serviceManager.contents;
    const settings = app.serviceManager.serverSettings;
    const locator = new CellLocator(notebooks, contents);
    // notebooks render with clones of this registry made when they open: every notebook
    // opened after this plugin starts (restored tabs included) has both renderers
    rendermime.addFactory(inputRequestFactory({ locator, settings, trans }));
    rendermime.addFactory(
      moreOutputFactory({ locator, settings, trans, rendermime })
    );
    reportUnopenableNotebooks(notebooks, contents, settings, trans);
    void reportUnavailableKernels(
      app.serviceManager.kernelspecs,
      settings,
      trans
    );
  }
};

export default plugin;
