// The PUT of a file's bytes to the object store, through the presigned URL the API gave. An
// XMLHttpRequest, not fetch: fetch cannot report upload progress, and a person waiting for 25 MB
// wants to see it move. Abortable (the chip's Cancel).

import type { UploadRequest } from "../lib/types";

export interface PutHandle {
  /** The store's HTTP status; 0 when there was no answer (network error, aborted). */
  done: Promise<number>;
  abort(): void;
}

export type PutFn = (req: UploadRequest, body: Blob, onProgress: (sent: number) => void) => PutHandle;

/** What the browser sets itself and refuses from scripts (it logs an error for each try). */
const SET_BY_BROWSER = new Set(["content-length", "host", "connection", "expect", "transfer-encoding"]);

/** The subset of XMLHttpRequest used here (tests pass a fake). */
export interface XhrLike {
  open(method: string, url: string): void;
  setRequestHeader(name: string, value: string): void;
  send(body: Blob): void;
  abort(): void;
  readonly status: number;
  upload: { onprogress: ((e: { loaded: number }) => void) | null };
  onload: (() => void) | null;
  onerror: (() => void) | null;
  onabort: (() => void) | null;
  ontimeout: (() => void) | null;
}

export function makePut(createXhr: () => XhrLike = () => new XMLHttpRequest() as unknown as XhrLike): PutFn {
  return (req, body, onProgress) => {
    const xhr = createXhr();
    const done = new Promise<number>((resolve) => {
      xhr.upload.onprogress = (e) => onProgress(e.loaded);
      xhr.onload = () => resolve(xhr.status);
      xhr.onerror = xhr.onabort = xhr.ontimeout = () => resolve(0);
      try {
        xhr.open(req.method || "PUT", req.url);
        // Exactly the headers the URL was signed with: the store refuses anything else.
        for (const [name, value] of Object.entries(req.headers ?? {})) {
          if (!SET_BY_BROWSER.has(name.toLowerCase())) xhr.setRequestHeader(name, value);
        }
        xhr.send(body);
      } catch {
        resolve(0);
      }
    });
    return { done, abort: () => xhr.abort() };
  };
}
