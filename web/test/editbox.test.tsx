// @vitest-environment jsdom
import { h, render } from "preact";
import { afterEach, describe, expect, it } from "vitest";
import { EditBox } from "../src/ui/MessageParts";

describe("the inline editor of a message", () => {
  afterEach(() => render(null, document.body));

  // A browser test once saw "old body" + "new body" saved: the caret was moved to the end
  // after the page was already on screen, between a "select all" and the typing that should
  // replace the selection. The caret must be in place by the time the editor can be seen.
  it("is focused with the caret after the old text as soon as it is in the page", () => {
    const body = "Edit me please";
    render(h(EditBox, { initial: body, onSave: () => {}, onCancel: () => {} }), document.body);
    const box = document.querySelector<HTMLTextAreaElement>("textarea.edit-input");
    expect(box).not.toBeNull();
    expect(box?.value).toBe(body);
    expect(document.activeElement).toBe(box);
    expect(box?.selectionStart).toBe(body.length);
    expect(box?.selectionEnd).toBe(body.length);
  });

  it("keeps a selection made right after it shows up, so typing replaces the old text", async () => {
    const body = "Edit me please";
    render(h(EditBox, { initial: body, onSave: () => {}, onCancel: () => {} }), document.body);
    const box = document.querySelector<HTMLTextAreaElement>("textarea.edit-input");
    box?.select();
    // Let every pending effect and timer run, as a browser would before the next key press.
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(box?.selectionStart).toBe(0);
    expect(box?.selectionEnd).toBe(body.length);
  });
});
