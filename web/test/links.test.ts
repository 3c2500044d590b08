import { describe, expect, it } from "vitest";
import { linkSpans, safeHref, splitBody } from "../src/lib/links";

const texts = (body: string) => linkSpans(body).map((l) => body.slice(l.start, l.end));

describe("links in bodies", () => {
  it("are http and https addresses written out in full", () => {
    expect(texts("see https://example.org/a?b=1#c and http://x.io")).toEqual([
      "https://example.org/a?b=1#c",
      "http://x.io",
    ]);
    expect(texts("HTTPS://EXAMPLE.ORG/Up")).toEqual(["HTTPS://EXAMPLE.ORG/Up"]);
    // Not bare names, not other schemes.
    expect(texts("example.org www.example.org ftp://example.org mailto:a@b.c")).toEqual([]);
  });

  it("never turn a javascript:, data: or other scheme into a link", () => {
    for (const body of [
      "javascript:alert(1)",
      "JavaScript://%0aalert(1)",
      "data:text/html,<script>alert(1)</script>",
      "vbscript:msgbox",
      "file:///etc/passwd",
    ]) {
      expect(linkSpans(body), body).toEqual([]);
    }
    // A scheme glued to a word is not an address either.
    expect(texts("xhttp://example.org")).toEqual([]);
    expect(safeHref("javascript:alert(1)")).toBeUndefined();
    expect(safeHref("https://")).toBeUndefined();
    expect(safeHref("https://example.org/x y")).toBe("https://example.org/x%20y");
  });

  it("leave the sentence's punctuation out, keep parentheses the address opened", () => {
    expect(texts("Look: https://example.org/a.")).toEqual(["https://example.org/a"]);
    expect(texts("(see https://example.org/x)")).toEqual(["https://example.org/x"]);
    expect(texts("https://en.wikipedia.org/wiki/Rust_(language), ok?")).toEqual([
      "https://en.wikipedia.org/wiki/Rust_(language)",
    ]);
    expect(texts('"https://example.org/q"!')).toEqual(["https://example.org/q"]);
    expect(texts("https://example.org/é?q=ü…")).toEqual(["https://example.org/é?q=ü…"]);
  });

  it("give a parsed href, the text as written", () => {
    const [l] = linkSpans("go https://Example.org/ä");
    expect(l).toMatchObject({ start: 3, href: "https://example.org/%C3%A4" });
  });
});

describe("splitBody", () => {
  it("cuts a body into text, links and mentions, which join back to it", () => {
    const body = "@bob read https://example.org/@alice then ping @alice.";
    const parts = splitBody(body, "alice");
    expect(parts).toEqual([
      { text: "@bob", mention: "bob", me: false },
      { text: " read " },
      // The @name inside the address belongs to the link.
      { text: "https://example.org/@alice", href: "https://example.org/@alice" },
      { text: " then ping " },
      { text: "@alice", mention: "alice", me: true },
      { text: "." },
    ]);
    expect(parts.map((p) => p.text).join("")).toBe(body);
  });

  it("keeps a body without links or mentions whole", () => {
    expect(splitBody("just words, javascript:void(0)")).toEqual([{ text: "just words, javascript:void(0)" }]);
  });
});

describe("the body as rendered", () => {
  type VNode = { type: unknown; props: Record<string, unknown> & { children?: unknown } };
  const children = (v: VNode) => (Array.isArray(v.props.children) ? v.props.children : [v.props.children]) as unknown[];

  it("links open in a new tab that gets no hold on this one; mentions of the reader are marked", async () => {
    const { Body } = await import("../src/ui/MessageParts");
    const out = Body({ text: "@alice see https://example.org/x and javascript:alert(1)", myUsername: "alice" }) as unknown as VNode;
    const [mention, , link, rest] = children(out) as VNode[];
    expect(mention).toMatchObject({ type: "mark", props: { class: "mention mention--me", title: "Mentions you" } });
    expect(link).toMatchObject({
      type: "a",
      props: { href: "https://example.org/x", target: "_blank", rel: "noopener noreferrer", children: "https://example.org/x" },
    });
    expect(rest).toBe(" and javascript:alert(1)");
    // Without the reader's name (the server did not say it mentions them): a plain mention.
    const plain = Body({ text: "@alice hi" }) as unknown as VNode;
    expect((children(plain) as VNode[])[0]).toMatchObject({ type: "span", props: { class: "mention" } });
  });
});
