// Download links of attachments (`GET …/attachments/{id}`): presigned, valid for minutes. Kept
// while they stay valid long enough to be used, so a conversation scrolled up and down asks once;
// one request per attachment at a time.

import type { AttachmentLink } from "../lib/types";

/** A link this close to its end is not handed out: the click, the download must still fit. */
const MARGIN_MS = 60_000;

export class AttachmentLinks {
  private links = new Map<string, { link: AttachmentLink; until: number }>();
  private asking = new Map<string, Promise<AttachmentLink>>();

  constructor(
    private readonly fetchLink: (channelId: string, attachmentId: string) => Promise<AttachmentLink>,
    private readonly now: () => number = () => Date.now(),
  ) {}

  /** A link usable for at least a minute, if one is kept. */
  cached(attachmentId: string): AttachmentLink | undefined {
    const kept = this.links.get(attachmentId);
    if (!kept) return undefined;
    if (kept.until - MARGIN_MS > this.now()) return kept.link;
    this.links.delete(attachmentId);
    return undefined;
  }

  /** A link usable for at least a minute; `fresh`: ask again even if one is kept (its thumbnail was pending). */
  get(channelId: string, attachmentId: string, fresh = false): Promise<AttachmentLink> {
    const kept = fresh ? undefined : this.cached(attachmentId);
    if (kept) return Promise.resolve(kept);
    const inFlight = this.asking.get(attachmentId);
    if (inFlight) return inFlight;
    const asked = this.now();
    const p = this.fetchLink(channelId, attachmentId).then(
      (link) => {
        this.asking.delete(attachmentId);
        const secs = Number.isFinite(link.expires_in) ? link.expires_in : 0;
        this.links.set(attachmentId, { link, until: asked + secs * 1000 });
        return link;
      },
      (e) => {
        this.asking.delete(attachmentId);
        throw e;
      },
    );
    this.asking.set(attachmentId, p);
    return p;
  }

  clear(): void {
    this.links.clear();
    this.asking.clear();
  }
}
