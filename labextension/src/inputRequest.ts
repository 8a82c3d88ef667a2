/**
 * An input box for an `input()` / `getpass()` that a server-run cell waits on.
 *
 * The server shows the pending request in the cell's outputs (so every collaborator sees
 * it, also after a reload) as this MIME type; whoever answers first answers for everyone
 * (`POST …/notebooks/{path}/input`), and the server then replaces the request with the
 * prompt and the answer (a password is never shown, stored or logged).
 */
import { IRenderMime } from '@jupyterlab/rendermime-interfaces';
import { ServerConnection } from '@jupyterlab/services';
import { TranslationBundle } from '@jupyterlab/translation';
import { Widget } from '@lumino/widgets';

import { ApiError, notebookUrl, requestJSON } from './api';
import { CellLocator, ICellLocation } from './location';

export const INPUT_REQUEST_MIME =
  'application/vnd.jupyter-cocalc-sync.input-request+json';

/** What the server writes into the output's data. */
interface IInputRequest {
  prompt?: string;
  password?: boolean;
}

/** What the renderer needs from the application. */
export interface IInputRequestContext {
  locator: CellLocator;
  settings: ServerConnection.ISettings;
  trans: TranslationBundle;
}

export function inputRequestFactory(
  context: IInputRequestContext
): IRenderMime.IRendererFactory {
  return {
    // renders no markup from the data (text only) and answers only the cell it is shown
    // in: safe for untrusted outputs too
    safe: true,
    mimeTypes: [INPUT_REQUEST_MIME],
    defaultRank: 0,
    createRenderer: () => new InputRequestRenderer(context)
  };
}

const STDIN_CLASS = 'jp-Stdin';
const STDIN_PROMPT_CLASS = 'jp-Stdin-prompt';
const STDIN_INPUT_CLASS = 'jp-Stdin-input';
const STATUS_CLASS = 'jp-cocalcSync-inputStatus';

export class InputRequestRenderer extends Widget implements IRenderMime.IRenderer {
  constructor(private readonly context: IInputRequestContext) {
    super();
    this.addClass(STDIN_CLASS);
    this.addClass('jp-cocalcSync-inputRequest');
    this._prompt = document.createElement('pre');
    this._prompt.className = STDIN_PROMPT_CLASS;
    this._text = document.createElement('span');
    this._input = document.createElement('input');
    this._input.className = STDIN_INPUT_CLASS;
    this._input.autocomplete = 'off';
    this._input.spellcheck = false;
    this._status = document.createElement('span');
    this._status.className = STATUS_CLASS;
    this._prompt.append(this._text, this._input);
    this.node.append(this._prompt, this._status);
    this._input.addEventListener('keydown', this._onKeyDown);
  }

  async renderModel(model: IRenderMime.IMimeModel): Promise<void> {
    const request = (model.data[INPUT_REQUEST_MIME] ?? {}) as IInputRequest;
    const password = !!request.password;
    this._text.textContent = String(request.prompt ?? '');
    const type = password ? 'password' : 'text';
    if (this._input.getAttribute('type') !== type) {
      this._input.setAttribute('type', type);
      this._input.value = '';
    }
    this._input.setAttribute(
      'aria-label',
      password
        ? this.context.trans.__('Password for the running cell')
        : this.context.trans.__('Input for the running cell')
    );
  }

  protected onAfterAttach(): void {
    this._location = this.context.locator.locate(this.node);
    if (this._location === null) {
      this._input.disabled = true;
      this._status.textContent = this.context.trans.__(
        'Answer it in the notebook.'
      );
      return;
    }
    // the user who is looking at this cell and not typing elsewhere gets the cursor here,
    // as JupyterLab's own input box does
    const focused = document.activeElement as HTMLElement | null;
    const typing =
      focused !== null &&
      (focused.isContentEditable ||
        ['INPUT', 'TEXTAREA', 'SELECT'].includes(focused.tagName));
    if (!typing && this.context.locator.isInActiveCell(this.node)) {
      this._input.focus({ preventScroll: true });
    }
  }

  dispose(): void {
    this._input.removeEventListener('keydown', this._onKeyDown);
    this._input.value = '';
    super.dispose();
  }

  private _onKeyDown = (event: KeyboardEvent): void => {
    // keys typed here are not notebook shortcuts
    event.stopPropagation();
    if (event.key === 'Enter' && !event.isComposing) {
      event.preventDefault();
      void this._send();
    }
  };

  private async _send(): Promise<void> {
    const location =
      this._location ?? this.context.locator.locate(this.node);
    if (location === null || this._input.disabled) {
      return;
    }
    const trans = this.context.trans;
    const value = this._input.value;
    this._input.disabled = true;
    this._status.textContent = trans.__('Sending…');
    try {
      await requestJSON(
        this.context.settings,
        notebookUrl(this.context.settings, location.path, 'input'),
        {
          method: 'POST',
          body: JSON.stringify({ cell_id: location.cellId, value })
        }
      );
      // the server now replaces this output with the answer, in every tab
      this._input.value = '';
      this._status.textContent = trans.__('Sent.');
    } catch (error) {
      if (error instanceof ApiError && error.status === 409) {
        this._input.value = '';
        this._status.textContent = trans.__('Someone else answered it.');
        return;
      }
      this._input.disabled = false;
      this._status.textContent = trans.__(
        'Not sent: %1',
        error instanceof Error ? error.message : String(error)
      );
    }
  }

  private _location: ICellLocation | null = null;
  private readonly _prompt: HTMLPreElement;
  private readonly _text: HTMLSpanElement;
  private readonly _input: HTMLInputElement;
  private readonly _status: HTMLSpanElement;
}
