/**
 * Which notebook and cell a rendered output belongs to, found from where it is in the page.
 *
 * Renderers answer for the cell they are shown in, not for the path and cell id written in
 * the output's data: those may be stale (the notebook was renamed since) or, in a file
 * someone sent, point elsewhere.
 */
import { ICellModel } from '@jupyterlab/cells';
import { INotebookTracker } from '@jupyterlab/notebook';
import { Contents } from '@jupyterlab/services';

/** The notebook (its path on the server) and the cell an output is shown in. */
export interface ICellLocation {
  path: string;
  cellId: string;
  /** the cell's model (absent for an output shown outside its notebook) */
  model?: ICellModel;
}

/** Finds the notebook cell that holds a DOM node. */
export class CellLocator {
  constructor(
    private readonly notebooks: INotebookTracker,
    private readonly contents: Contents.IManager
  ) {}

  /** The cell holding `node`, or `null` outside every open notebook's cells. */
  locate(node: HTMLElement): ICellLocation | null {
    const panel = this.notebooks.find(p => p.node.contains(node));
    if (!panel) {
      return null;
    }
    const cell = panel.content.widgets.find(c => c.node.contains(node));
    if (!cell) {
      return null;
    }
    return {
      path: this.contents.localPath(panel.context.path),
      cellId: cell.model.id,
      model: cell.model
    };
  }

  /** Whether `node` is in the cell the user works on in the notebook shown now. */
  isInActiveCell(node: HTMLElement): boolean {
    const panel = this.notebooks.currentWidget;
    const cell = panel?.content.activeCell;
    return !!cell && cell.node.contains(node);
  }
}
