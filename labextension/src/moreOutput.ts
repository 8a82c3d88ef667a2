/**
 * The output a cell printed past its visible limits, shown in place, a page at a time.
 *
 * The server keeps the overflow on disk and shows a marker in the cell (this MIME type);
 * this renderer loads it page by page (`GET …/cells/{id}/more_output?offset=&limit=`) and
 * renders each page as JupyterLab renders outputs (text, ANSI colours, images: the server
 * inlines them), each page in an output area of its own so a long overflow never re-renders
 * what is already shown.
 */
import { ICellModel } from '@jupyterlab/cells';
import * as nbformat from '@jupyterlab/nbformat';
import { OutputArea, OutputAreaModel } from '@jupyterlab/outputarea';
import { IRenderMimeRegistry } from '@jupyterlab/rendermime';
import { IRenderMime } from '@jupyterlab/rendermime-interfaces';
import { ServerConnection } from '@jupyterlab/services';
import { TranslationBundle } from '@jupyterlab/translation';
import { Panel, Widget } from '@lumino/widgets';

import { notebookUrl, requestJSON } from './api';
import { CellLocator, ICellLocation } from './location';

export const MORE_OUTPUT_MIME =
  'application/vnd.jupyter-cocalc-sync.more-output+json';

/** Stored entries (up to 64 KiB of text each) per page. */
export const PAGE_ENTRIES = 4;

/** What the server writes into the marker's data. */
interface IMoreOutputMarker {
  path?: string;
  cell_id?: string;
}

/** One page of `GET …/more_output?offset=&limit=`. */
export interface IMoreOutputPage {
  messages: nbformat.IOutput[];
  offset: number;
  /** where the next page starts, `null` after the last one */
  next_offset: number | null;
  /** stored entries, and their size in bytes */
  total: number;
  bytes: number;
  /** the size of this page's entries */
  page_bytes: number;
}

export interface IMoreOutputContext {
  locator: CellLocator;
  settings: ServerConnection.ISettings;
  trans: TranslationBundle;
  rendermime: IRenderMimeRegistry;
}

export function moreOutputFactory(
  context: IMoreOutputContext
): IRenderMime.IRendererFactory {
  return {
    // the overflow is rendered with the trust of the output it continues
    safe: true,
    mimeTypes: [MORE_OUTPUT_MIME],
    defaultRank: 0,
    createRenderer: () => new MoreOutputRenderer(context)
  };
}

export class MoreOutputRenderer extends Panel implements IRenderMime.IRenderer {
  constructor(private readonly context: IMoreOutputContext) {
    super();
    this.addClass('jp-cocalcSync-moreOutput');
    this._pages = new Panel();
    this._pages.addClass('jp-cocalcSync-moreOutput-pages');
    const bar = new Widget();
    bar.addClass('jp-cocalcSync-moreOutput-bar');
    this._status = document.createElement('span');
    this._status.className = 'jp-cocalcSync-moreOutput-status';
    this._button = document.createElement('button');
    this._button.className = 'jp-mod-styled jp-mod-accept jp-cocalcSync-showMore';
    this._button.textContent = context.trans.__('Show more');
    this._button.addEventListener('click', this._onClick);
    bar.node.append(this._status, this._button);
    this.addWidget(this._pages);
    this.addWidget(bar);
    this._status.textContent = context.trans.__(
      'Output truncated: the rest is kept on the server.'
    );
  }

  async renderModel(model: IRenderMime.IMimeModel): Promise<void> {
    const marker = (model.data[MORE_OUTPUT_MIME] ?? {}) as IMoreOutputMarker;
    this._marker = marker;
    this._trusted = model.trusted;
  }

  protected onAfterAttach(): void {
    const where = this.context.locator.locate(this.node);
    if (where?.model && where.model !== this._cell) {
      this._cell?.stateChanged.disconnect(this._onCellState, this);
      this._cell = where.model;
      this._cell.stateChanged.connect(this._onCellState, this);
    }
    if (this._summary === null && !this._loading) {
      // the size of what is kept, so the user knows what "Show more" brings
      void this._load(0, 0);
    }
  }

  dispose(): void {
    this._button.removeEventListener('click', this._onClick);
    this._cell?.stateChanged.disconnect(this._onCellState, this);
    super.dispose();
  }

  /** A run that ends sets the execution count: what is kept is complete, ask its size. */
  private _onCellState(_: ICellModel, change: { name: string }): void {
    if (change.name === 'executionCount' && this._pages.widgets.length === 0) {
      void this._load(0, 0);
    }
  }

  private _onClick = (): void => {
    void this._load(this._nextOffset, PAGE_ENTRIES);
  };

  private _where(): ICellLocation | null {
    const found = this.context.locator.locate(this.node);
    if (found !== null) {
      return found;
    }
    const { path, cell_id } = this._marker;
    return typeof path === 'string' && typeof cell_id === 'string'
      ? { path, cellId: cell_id }
      : null;
  }

  private async _load(offset: number, limit: number): Promise<void> {
    const where = this._where();
    if (where === null || this._loading) {
      return;
    }
    const { settings, trans } = this.context;
    const url =
      notebookUrl(
        settings,
        where.path,
        `cells/${encodeURIComponent(where.cellId)}/more_output`
      ) + `?offset=${offset}&limit=${limit}`;
    this._loading = true;
    this._button.disabled = true;
    if (limit > 0) {
      this._status.textContent = trans.__('Loading…');
    }
    try {
      const page = await requestJSON<IMoreOutputPage>(settings, url);
      if (this.isDisposed) {
        return;
      }
      this._summary = page;
      if (page.messages.length > 0) {
        this._addPage(page.messages);
      }
      this._shownBytes += page.page_bytes;
      this._nextOffset = page.next_offset ?? page.total;
      this._showProgress(page, limit > 0);
    } catch (error) {
      this._button.disabled = false;
      this._status.textContent = trans.__(
        'Could not load the rest of the output: %1',
        error instanceof Error ? error.message : String(error)
      );
    } finally {
      this._loading = false;
    }
  }

  private _addPage(messages: nbformat.IOutput[]): void {
    const model = new OutputAreaModel({ trusted: this._trusted });
    model.fromJSON(messages);
    const area = new OutputArea({
      model,
      rendermime: this.context.rendermime
    });
    area.disposed.connect(() => model.dispose());
    this._pages.addWidget(area);
  }

  private _showProgress(page: IMoreOutputPage, loaded: boolean): void {
    const trans = this.context.trans;
    const done = page.next_offset === null;
    this._button.disabled = done;
    this._button.hidden = done;
    if (page.total === 0) {
      this._status.textContent = trans.__('The rest of the output is gone.');
    } else if (done) {
      this._status.textContent = trans.__('All of the output is shown.');
    } else if (!loaded && this._pages.widgets.length === 0) {
      this._status.textContent = trans.__(
        'Output truncated: %1 more are kept on the server.',
        formatBytes(page.bytes)
      );
    } else {
      this._status.textContent = trans.__(
        'Shown %1 of %2 more.',
        formatBytes(this._shownBytes),
        formatBytes(page.bytes)
      );
    }
  }

  private _marker: IMoreOutputMarker = {};
  private _cell: ICellModel | null = null;
  private _trusted = false;
  private _summary: IMoreOutputPage | null = null;
  private _nextOffset = 0;
  private _shownBytes = 0;
  private _loading = false;
  private readonly _pages: Panel;
  private readonly _status: HTMLSpanElement;
  private readonly _button: HTMLButtonElement;
}

/** `1.2 MB`, `340 kB`, `12 bytes`. */
export function formatBytes(bytes: number): string {
  if (bytes >= 1e6) {
    return `${(bytes / 1e6).toFixed(1)} MB`;
  }
  if (bytes >= 1e3) {
    return `${Math.round(bytes / 1e3)} kB`;
  }
  return `${bytes} bytes`;
}
