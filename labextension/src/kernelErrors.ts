/**
 * When the server can list no kernelspecs (e.g. its kernel gateway is down), JupyterLab only
 * offers "No Kernel" in its kernel dialog; this says why, with the server's reason.
 */
import { Notification } from '@jupyterlab/apputils';
import { URLExt } from '@jupyterlab/coreutils';
import { KernelSpec, ServerConnection } from '@jupyterlab/services';
import { TranslationBundle } from '@jupyterlab/translation';

import { ApiError, requestJSON } from './api';

export async function reportUnavailableKernels(
  kernelspecs: KernelSpec.IManager,
  settings: ServerConnection.ISettings,
  trans: TranslationBundle
): Promise<void> {
  await kernelspecs.ready;
  const known = kernelspecs.specs?.kernelspecs ?? {};
  if (Object.keys(known).length > 0) {
    return;
  }
  // JupyterLab keeps no reason for specs it could not get: ask again for the server's
  try {
    await requestJSON(settings, URLExt.join(settings.baseUrl, 'api/kernelspecs'));
  } catch (error) {
    if (error instanceof ApiError) {
      const id = Notification.error(
        trans.__('No kernel can start: %1', error.message),
        { autoClose: false }
      );
      // gone once kernels are back (the gateway answers again)
      const dismiss = (): void => {
        if (Object.keys(kernelspecs.specs?.kernelspecs ?? {}).length > 0) {
          Notification.dismiss(id);
          kernelspecs.specsChanged.disconnect(dismiss);
        }
      };
      kernelspecs.specsChanged.connect(dismiss);
    }
  }
}
