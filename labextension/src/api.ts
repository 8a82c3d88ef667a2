/**
 * Requests to the server part of jupyter-cocalc-sync (`/api/cocalc-sync/…`), through
 * JupyterLab's `ServerConnection` (base URL, token, XSRF cookie).
 */
import { URLExt } from '@jupyterlab/coreutils';
import { ServerConnection } from '@jupyterlab/services';

/** A request the server answered with an error status: its status and its `message`. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    message: string
  ) {
    super(message);
  }
}

/** The URL of a notebook route: `api/cocalc-sync/notebooks/{path}/{rest}`. */
export function notebookUrl(
  settings: ServerConnection.ISettings,
  path: string,
  rest = ''
): string {
  const url = URLExt.join(
    settings.baseUrl,
    'api/cocalc-sync/notebooks',
    URLExt.encodeParts(path)
  );
  return rest ? URLExt.join(url, rest) : url;
}

/**
 * Send a request and return its JSON answer; `ApiError` for an error status (with the
 * server's `message`), `ServerConnection.NetworkError` when the server cannot be reached.
 */
export async function requestJSON<T>(
  settings: ServerConnection.ISettings,
  url: string,
  init: RequestInit = {}
): Promise<T> {
  let response: Response;
  try {
    response = await ServerConnection.makeRequest(url, init, settings);
  } catch (error) {
    throw new ServerConnection.NetworkError(error as TypeError);
  }
  const text = await response.text();
  let body: unknown = null;
  if (text) {
    try {
      body = JSON.parse(text);
    } catch {
      body = text;
    }
  }
  if (!response.ok) {
    throw new ApiError(response.status, messageOf(body, response));
  }
  return body as T;
}

function messageOf(body: unknown, response: Response): string {
  if (body && typeof body === 'object' && 'message' in body) {
    const message = (body as { message: unknown }).message;
    if (typeof message === 'string' && message) {
      return message;
    }
  }
  if (typeof body === 'string' && body) {
    return body;
  }
  return `${response.status} ${response.statusText}`;
}
