// Attachments in the conversation: the files under a message (pictures in a box of their own
// shape, reserved before they load; other files as chips that download), and the composer's
// chips of files on their way (progress, cancel, retry, errors in words).

import { useEffect, useRef, useState } from "preact/hooks";
import type { ChatApp } from "../app/client";
import { humanSize, imageBox, imageSource, isInlineImage } from "../lib/attachments";
import { describe } from "../lib/errors";
import type { MessageAttachment } from "../lib/types";
import { isActive, progressOf, type Upload } from "../lib/uploads";
import { useMounted } from "./hooks";
import { IconFile, IconImage } from "./icons";

/** Pictures start loading this far before they scroll into view. */
const PRELOAD_MARGIN = "300px 0px";

/** The files of a message, under its body. */
export function MessageAttachments({
  app,
  channelId,
  attachments,
}: {
  app: ChatApp;
  channelId: string;
  attachments: readonly MessageAttachment[];
}) {
  if (attachments.length === 0) return null;
  return (
    <ul class="attachments" aria-label={attachments.length === 1 ? "Attachment" : `${attachments.length} attachments`}>
      {attachments.map((a) => (
        <li key={a.id} class="attachment" data-attachment-id={a.id}>
          {isInlineImage(a) ? <InlineImage app={app} channelId={channelId} a={a} /> : <FileChip app={app} channelId={channelId} a={a} />}
        </li>
      ))}
    </ul>
  );
}

/** Becomes true once `ref`'s element comes near the screen (at once where IntersectionObserver is missing). */
function useSeen(ref: { current: Element | null }): boolean {
  const [seen, setSeen] = useState(false);
  useEffect(() => {
    const el = ref.current;
    if (seen || !el) return;
    if (typeof IntersectionObserver === "undefined") {
      setSeen(true);
      return;
    }
    const io = new IntersectionObserver(
      (entries) => {
        if (entries.some((e) => e.isIntersecting)) {
          setSeen(true);
          io.disconnect();
        }
      },
      { rootMargin: PRELOAD_MARGIN },
    );
    io.observe(el);
    return () => io.disconnect();
  }, [seen, ref]);
  return seen;
}

/**
 * A picture: its box (the image's aspect ratio, at most 320 px a side) is there from the start,
 * so nothing below moves when it loads; the link is asked for when the box comes into view; a
 * click opens the file itself in a new tab.
 */
function InlineImage({ app, channelId, a }: { app: ChatApp; channelId: string; a: MessageAttachment }) {
  const box = imageBox(a.width ?? 0, a.height ?? 0);
  const el = useRef<HTMLElement>(null);
  const seen = useSeen(el);
  const [src, setSrc] = useState<string>();
  const [href, setHref] = useState<string>();
  const [loaded, setLoaded] = useState(false);
  const [broken, setBroken] = useState(false);
  /** Bumped after a load error: ask for a fresh link, once. */
  const [reloads, setReloads] = useState(0);
  const mounted = useMounted();

  useEffect(() => {
    if (!seen) return;
    let stopped = false;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const ask = (pendingBefore: number, fresh: boolean) => {
      app.attachmentLink(channelId, a.id, fresh).then(
        (link) => {
          if (stopped) return;
          setHref(link.url);
          const next = imageSource(link, pendingBefore);
          if ("src" in next) setSrc(next.src);
          else timer = setTimeout(() => ask(pendingBefore + 1, true), next.retryInMs);
        },
        () => {
          if (!stopped) setBroken(true);
        },
      );
    };
    ask(0, reloads > 0);
    return () => {
      stopped = true;
      if (timer) clearTimeout(timer);
    };
  }, [seen, reloads, app, channelId, a.id]);

  const style = { width: `${box.width}px`, aspectRatio: `${box.width} / ${box.height}` };
  const picture =
    src && !broken ? (
      <img
        src={src}
        alt={a.name}
        width={box.width}
        height={box.height}
        decoding="async"
        onLoad={() => setLoaded(true)}
        onError={() => {
          // The link may have run out before the picture was fetched: a fresh one, once.
          if (reloads === 0) setReloads(1);
          else setBroken(true);
        }}
      />
    ) : (
      <span class="attachment-image-placeholder" aria-hidden="true">
        <IconImage />
        {broken && <span class="small">Not available</span>}
      </span>
    );

  if (!href) {
    return (
      <span ref={el} class="attachment-image" style={style} role="img" aria-label={a.name} data-loaded="false">
        {picture}
      </span>
    );
  }
  return (
    <a
      ref={el as { current: HTMLAnchorElement | null }}
      class="attachment-image"
      style={style}
      href={href}
      target="_blank"
      rel="noopener noreferrer"
      aria-label={`Open ${a.name} in a new tab`}
      title={`${a.name} (${humanSize(a.size)})`}
      data-loaded={loaded ? "true" : "false"}
      onClick={(e) => {
        // Links last five minutes: open a kept one that is still good, or ask for a new one.
        const kept = app.cachedAttachmentLink(a.id);
        if (kept) {
          e.currentTarget.href = kept.url;
          return;
        }
        e.preventDefault();
        app.attachmentLink(channelId, a.id, true).then(
          (link) => {
            if (mounted.current) setHref(link.url);
            window.open(link.url, "_blank", "noopener,noreferrer");
          },
          (err) => app.notify(describe(err)),
        );
      }}
    >
      {picture}
    </a>
  );
}

/** Any other file: a chip with its name and size that downloads it through a fresh link. */
function FileChip({ app, channelId, a }: { app: ChatApp; channelId: string; a: MessageAttachment }) {
  const [busy, setBusy] = useState(false);
  const mounted = useMounted();
  const download = async () => {
    if (busy) return;
    setBusy(true);
    try {
      const link = await app.attachmentLink(channelId, a.id);
      // The server sends it as a download (Content-Disposition: attachment): the page stays.
      const tmp = document.createElement("a");
      tmp.href = link.url;
      tmp.download = a.name;
      tmp.rel = "noopener";
      document.body.appendChild(tmp);
      tmp.click();
      tmp.remove();
    } catch (e) {
      app.notify(describe(e));
    } finally {
      if (mounted.current) setBusy(false);
    }
  };
  const Icon = a.content_type.startsWith("image/") ? IconImage : IconFile;
  return (
    // The name is spelled out: an accessible name made from the inline pieces loses their spaces.
    <button
      type="button"
      class="attachment-file"
      data-name={a.name}
      aria-label={`Download ${a.name}, ${humanSize(a.size)}`}
      aria-busy={busy ? true : undefined}
      onClick={download}
    >
      <Icon />
      <span class="attachment-name" dir="auto">
        {a.name}
      </span>
      <span class="attachment-size">{humanSize(a.size)}</span>
    </button>
  );
}

/** The composer's files: each with its progress, Cancel / Remove, Retry after an error. */
export function UploadChips({
  uploads,
  onRemove,
  onRetry,
}: {
  uploads: readonly Upload[];
  onRemove: (key: string) => void;
  onRetry: (key: string) => void;
}) {
  if (uploads.length === 0) return null;
  return (
    <ul class="uploads" aria-label="Files to send">
      {uploads.map((u) => (
        <UploadChip key={u.key} u={u} onRemove={onRemove} onRetry={onRetry} />
      ))}
    </ul>
  );
}

function stageWords(u: Upload, percent: number): string {
  switch (u.stage) {
    case "creating":
      return "Starting…";
    case "uploading":
      return `${percent}%`;
    case "renewing":
      return "Trying again…";
    case "completing":
      return "Finishing…";
    case "done":
      return "Ready";
    default:
      return "";
  }
}

function UploadChip({ u, onRemove, onRetry }: { u: Upload; onRemove: (key: string) => void; onRetry: (key: string) => void }) {
  const active = isActive(u);
  const percent = Math.round(progressOf(u) * 100);
  const words = stageWords(u, percent);
  return (
    <li class={`upload upload--${u.stage}`} data-stage={u.stage} data-name={u.name}>
      <div class="upload-head">
        {u.content_type.startsWith("image/") ? <IconImage /> : <IconFile />}
        <span class="upload-name" dir="auto" title={u.name}>
          {u.name}
        </span>
        <span class="upload-size">{humanSize(u.size)}</span>
        {words && <span class="upload-state">{words}</span>}
        {u.stage === "failed" && u.retryFrom && (
          <button type="button" class="small upload-retry" onClick={() => onRetry(u.key)}>
            Retry<span class="sr-only"> uploading {u.name}</span>
          </button>
        )}
        <button
          type="button"
          class="upload-remove"
          aria-label={active ? `Cancel uploading ${u.name}` : `Remove ${u.name}`}
          title={active ? "Cancel the upload" : "Remove"}
          onClick={() => onRemove(u.key)}
        >
          <span aria-hidden="true">×</span>
        </button>
      </div>
      {active && <progress class="upload-progress" max={100} value={percent} aria-label={`Uploading ${u.name}`} />}
      {u.error && (
        <p class="upload-error" role="alert">
          {u.error}
        </p>
      )}
    </li>
  );
}
