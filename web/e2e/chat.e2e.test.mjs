// End-to-end test of the web client against a running stack (nginx on BASE_URL), driving Debian's
// Chromium through playwright-core. Run: npm run e2e   (BASE_URL defaults to http://127.0.0.1:8080)
//
// Two people, each in their own browser context (one desktop-sized, one phone-sized), register,
// create / find / join a channel, talk both ways, reload, lose the network while the other keeps
// writing, come back, and must then see every message exactly once and in the same order. One
// mentions the other, who sees the unread count in the tab's title and the list, then the message
// marked as mentioning them under a "new since you last read" line. Then one edits, reacts,
// replies and deletes, and the other sees each change live and after a reload; the channel's owner
// deletes the other's message. One attaches a picture and a file; the other sees the picture load
// in its box and downloads the file. Screenshots go to e2e/artifacts/.

import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { existsSync, mkdirSync, readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { deflateSync } from "node:zlib";
import { chromium } from "playwright-core";

const BASE_URL = (process.env.BASE_URL ?? "http://127.0.0.1:8080").replace(/\/$/, "");
const CHROMIUM = process.env.CHROMIUM_PATH ?? "/usr/bin/chromium";
const ARTIFACTS = fileURLToPath(new URL("./artifacts/", import.meta.url));
const WAIT = 15_000; // default for every wait
const STEP = 90_000; // per step

const run = `${Date.now().toString(36)}${Math.floor(Math.random() * 1e4).toString(36)}`;
const alice = { username: `alice_${run}`, display: `Alice ${run}`, password: "correct horse 1" };
const bob = { username: `bob_${run}`, display: `Bob ${run}`, password: "battery staple 2" };
const channelName = `e2e-${run}`;

const DESKTOP = { width: 1280, height: 800 };
const PHONE = { width: 390, height: 844 };

let browser;
let ctxA;
let ctxB;
let pageA;
let pageB;
const pageErrors = [];
let failed = false;

mkdirSync(ARTIFACTS, { recursive: true });

async function shot(page, name) {
  try {
    await page.screenshot({ path: `${ARTIFACTS}${name}.png`, timeout: WAIT });
  } catch (e) {
    console.error(`# screenshot ${name} failed: ${e.message}`);
  }
}

/** A step: skipped once an earlier one failed; screenshots both pages when it fails. */
function step(name, fn) {
  it(name, { timeout: STEP }, async (t) => {
    if (failed) {
      t.skip("an earlier step failed");
      return;
    }
    try {
      await fn(t);
    } catch (e) {
      failed = true;
      const slug = name.replace(/[^a-z0-9]+/gi, "-").toLowerCase();
      if (pageA) await shot(pageA, `FAILED-${slug}-a`);
      if (pageB) await shot(pageB, `FAILED-${slug}-b`);
      throw e;
    }
  });
}

async function newPage(ctx, label) {
  const page = await ctx.newPage();
  page.setDefaultTimeout(WAIT);
  page.setDefaultNavigationTimeout(WAIT);
  page.on("pageerror", (err) => pageErrors.push(`${label}: ${err.message}`));
  page.on("console", (msg) => {
    if (msg.type() === "error") console.log(`# [${label} console] ${msg.text()}`);
  });
  return page;
}

const CRC_TABLE = Array.from({ length: 256 }, (_, n) => {
  let c = n;
  for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
  return c >>> 0;
});
const crc32 = (buf) => {
  let c = 0xffffffff;
  for (const b of buf) c = CRC_TABLE[(c ^ b) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
};

/** A PNG of one colour, `width`×`height` (8-bit RGB), made here so the test needs no files. */
function png(width, height, [r, g, b] = [59, 91, 219]) {
  const chunk = (type, data) => {
    const head = Buffer.alloc(4);
    head.writeUInt32BE(data.length);
    const body = Buffer.concat([Buffer.from(type, "ascii"), data]);
    const crc = Buffer.alloc(4);
    crc.writeUInt32BE(crc32(body));
    return Buffer.concat([head, body, crc]);
  };
  const ihdr = Buffer.alloc(13); // compression, filter and interlace stay 0
  ihdr.writeUInt32BE(width, 0);
  ihdr.writeUInt32BE(height, 4);
  ihdr[8] = 8; // bits per channel
  ihdr[9] = 2; // RGB
  const row = Buffer.alloc(1 + width * 3); // filter byte 0, then the pixels
  for (let x = 0; x < width; x++) row.set([r, g, b], 1 + x * 3);
  const raw = Buffer.concat(Array.from({ length: height }, () => row));
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk("IHDR", ihdr),
    chunk("IDAT", deflateSync(raw)),
    chunk("IEND", Buffer.alloc(0)),
  ]);
}

const connBadge = (page) => page.locator(".conn");

async function waitConnected(page, timeout = WAIT) {
  await page.locator('.conn[data-status="connected"]').waitFor({ state: "visible", timeout });
}

async function register(page, who) {
  await page.goto(`${BASE_URL}/`, { waitUntil: "domcontentloaded" });
  await page.getByRole("button", { name: "Create account" }).click();
  await page.getByLabel("Username").fill(who.username);
  await page.getByLabel(/Display name/).fill(who.display);
  await page.getByLabel("Password").fill(who.password);
  await page.locator("form").getByRole("button", { name: "Create an account" }).click();
  await waitConnected(page);
}

/** The messages shown in the open conversation, top to bottom (not the day separators or the unread line). */
function shown(page) {
  return page.$$eval("ol.messages > li.msg", (els) =>
    els.map((e) => ({
      body: e.querySelector(".msg-body")?.textContent ?? "",
      seq: e.dataset.seq ? Number(e.dataset.seq) : null,
      status: e.dataset.status,
      id: e.dataset.id ?? null,
    })),
  );
}

/** Waits until every body in `bodies` is shown as a confirmed message. */
async function waitForBodies(page, bodies, timeout = WAIT) {
  await page.waitForFunction(
    (want) => {
      const have = [...document.querySelectorAll('ol.messages > li[data-status="sent"] .msg-body')].map(
        (e) => e.textContent,
      );
      return want.every((b) => have.includes(b));
    },
    bodies,
    { timeout, polling: 100 },
  );
}

/** Waits until every shown message has its place (seq), i.e. nothing pending or unplaced. */
async function waitAllPlaced(page, timeout = WAIT) {
  await page.waitForFunction(
    () => [...document.querySelectorAll("ol.messages > li.msg")].every((e) => e.dataset.seq),
    undefined,
    { timeout, polling: 100 },
  );
}

async function send(page, body) {
  const box = page.locator("#composer-input");
  await box.fill(body);
  await box.press("Enter");
}

/** The confirmed message with this id in the open conversation. */
const messageById = (page, id) => page.locator(`ol.messages > li[data-id="${id}"]`);

/** The body text shown of the message with this id ("" for a tombstone). */
const bodyOf = (page, id) => messageById(page, id).locator(".msg-body").innerText();

/** Waits until the reaction chip `emoji` of message `id` shows `count` (absent when 0). */
async function waitReaction(page, id, emoji, count, timeout = WAIT) {
  await page.waitForFunction(
    ({ id, emoji, count }) => {
      const chip = document.querySelector(`ol.messages > li[data-id="${id}"] .reaction[data-emoji="${emoji}"]`);
      const shown = chip ? Number(chip.querySelector(".reaction-count")?.textContent ?? "NaN") : 0;
      return shown === count;
    },
    { id, emoji, count },
    { timeout, polling: 100 },
  );
}

/** Opens the conversation unless it is the one shown (on a phone, via the list). */
async function ensureConversation(page, name) {
  if (await page.locator("#conv-title", { hasText: name }).count()) return;
  const back = page.getByRole("link", { name: "Back to conversations" });
  if (await back.count()) await back.click();
  await openConversation(page, name);
}

async function openConversation(page, name) {
  const link = page.locator(".conv-link", { hasText: name });
  await link.first().waitFor({ state: "visible", timeout: WAIT });
  await link.first().click();
  await page.locator("#conv-title", { hasText: name }).waitFor({ timeout: WAIT });
}

function assertExactlyOnceInOrder(list, expected, who) {
  const bodies = list.map((m) => m.body);
  for (const b of expected) {
    const n = bodies.filter((x) => x === b).length;
    assert.equal(n, 1, `${who}: "${b}" is shown ${n} times (want exactly once); shown: ${JSON.stringify(bodies)}`);
  }
  const positions = expected.map((b) => bodies.indexOf(b));
  assert.deepEqual(
    [...positions].sort((a, b) => a - b),
    positions,
    `${who}: messages out of order: ${JSON.stringify(bodies)}`,
  );
  const seqs = list.map((m) => m.seq);
  assert.ok(
    seqs.every((s) => typeof s === "number"),
    `${who}: some messages have no seq: ${JSON.stringify(list)}`,
  );
  // Messages and events (edits, deletes, reactions) share a channel's positions: message seqs
  // may skip the positions of events, but always grow.
  for (let i = 1; i < seqs.length; i++) {
    assert.ok(seqs[i] > seqs[i - 1], `${who}: seq not increasing at ${i}: ${JSON.stringify(seqs)}`);
  }
  const ids = list.map((m) => m.id);
  assert.equal(new Set(ids).size, ids.length, `${who}: duplicate message ids: ${JSON.stringify(ids)}`);
}

describe(`web client end to end against ${BASE_URL}`, () => {
  before(async () => {
    if (!existsSync(CHROMIUM)) {
      throw new Error(
        `Chromium not found at ${CHROMIUM}. Install it with: apt-get install -y chromium ` +
          `(or set CHROMIUM_PATH to a Chromium binary).`,
      );
    }
    // Is the stack there? An unknown user must get a 401.
    let status;
    try {
      const res = await fetch(`${BASE_URL}/api/v1/auth/login`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ username: "nobody", password: "whatever1" }),
        signal: AbortSignal.timeout(10_000),
      });
      status = res.status;
    } catch (e) {
      status = `no answer (${e.cause?.code ?? e.message})`;
    }
    if (status !== 401) {
      throw new Error(
        `the stack at ${BASE_URL} is not ready: POST /api/v1/auth/login for an unknown user gave ${status}, ` +
          `want 401. Start it with deploy/stack.sh up (or set BASE_URL).`,
      );
    }
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      headless: true,
      timeout: 30_000,
      args: ["--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"],
    });
    ctxA = await browser.newContext({ viewport: DESKTOP });
    ctxB = await browser.newContext({ viewport: PHONE, isMobile: true, hasTouch: true, deviceScaleFactor: 2 });
    pageA = await newPage(ctxA, "A");
    pageB = await newPage(ctxB, "B");
  });

  after(async () => {
    await browser?.close().catch(() => {});
  });

  step("two fresh users register", async () => {
    await Promise.all([register(pageA, alice), register(pageB, bob)]);
    await shot(pageA, "01-registered-a-desktop");
    await shot(pageB, "01-registered-b-phone");
    assert.match(await connBadge(pageA).innerText(), /Connected/);
  });

  step("auth errors are shown in words a person understands", async () => {
    const ctx = await browser.newContext({ viewport: PHONE, isMobile: true, hasTouch: true });
    try {
      const page = await newPage(ctx, "C");
      await page.goto(`${BASE_URL}/`, { waitUntil: "domcontentloaded" });
      // A taken username.
      await page.getByRole("button", { name: "Create account" }).click();
      await page.getByLabel("Username").fill(alice.username.toUpperCase());
      await page.getByLabel("Password").fill("another password");
      await page.locator("form").getByRole("button", { name: "Create an account" }).click();
      await page.getByRole("alert").filter({ hasText: "already taken" }).waitFor({ timeout: WAIT });
      await shot(page, "02-username-taken-phone");
      // A wrong password.
      await page.getByRole("button", { name: "Log in" }).first().click();
      await page.getByLabel("Username").fill(alice.username);
      await page.getByLabel("Password").fill("not the password");
      await page.locator("form").getByRole("button", { name: "Log in" }).click();
      await page.getByRole("alert").filter({ hasText: "username or password is not right" }).waitFor({ timeout: WAIT });
      await shot(page, "02-wrong-password-phone");
    } finally {
      await ctx.close();
    }
  });

  step("A creates a channel", async () => {
    await pageA.getByRole("link", { name: "New channel" }).click();
    await pageA.getByLabel("Name").fill(channelName);
    await pageA.getByLabel(/Description/).fill("Made by the end-to-end test");
    await pageA.getByRole("button", { name: "Create channel" }).click();
    await pageA.locator("#conv-title", { hasText: `#${channelName}` }).waitFor({ timeout: WAIT });
    await pageA.getByText("No messages yet").waitFor({ timeout: WAIT });
    await shot(pageA, "03-channel-created-a-desktop");
  });

  step("B finds the channel by search and joins it", async () => {
    await pageB.getByRole("link", { name: "Browse channels" }).click();
    await pageB.getByLabel("Search channels by name").fill(channelName);
    const result = pageB.locator(".result", { hasText: channelName });
    await result.waitFor({ timeout: WAIT });
    await shot(pageB, "04-search-b-phone");
    await result.getByRole("button", { name: /Join/ }).click();
    await pageB.locator("#conv-title", { hasText: `#${channelName}` }).waitFor({ timeout: WAIT });
  });

  const hello = `Hello from Alice (${run})`;
  const reply = `Hi Alice, Bob here (${run})`;

  step("they exchange messages both ways", async () => {
    await send(pageA, hello);
    await waitForBodies(pageA, [hello]);
    await waitForBodies(pageB, [hello]);
    await send(pageB, reply);
    await waitForBodies(pageB, [reply]);
    await waitForBodies(pageA, [reply]);
    await waitAllPlaced(pageA);
    await waitAllPlaced(pageB);
    assertExactlyOnceInOrder(await shown(pageA), [hello, reply], "A");
    assertExactlyOnceInOrder(await shown(pageB), [hello, reply], "B");
    // The day's separator heads the messages.
    for (const page of [pageA, pageB]) {
      const first = page.locator("ol.messages > li").first();
      assert.match((await first.getAttribute("class")) ?? "", /\bday-sep\b/, "the first row is a day separator");
      assert.equal(await first.innerText(), "Today");
      assert.equal(await page.locator("ol.messages > li.day-sep").count(), 1, "one day, one separator");
      // Both had the conversation on screen as the messages came: nothing was unread.
      assert.equal(await page.locator(".unread-line").count(), 0, "no unread line for messages read as they came");
    }
    await shot(pageA, "05-conversation-a-desktop");
    await shot(pageB, "05-conversation-b-phone");
  });

  step("B reloads and sees the history", async () => {
    await pageB.reload({ waitUntil: "domcontentloaded" });
    await waitConnected(pageB);
    await pageB.locator("#conv-title", { hasText: `#${channelName}` }).waitFor({ timeout: WAIT });
    await waitForBodies(pageB, [hello, reply]);
    assertExactlyOnceInOrder(await shown(pageB), [hello, reply], "B after reload");
    await shot(pageB, "06-reloaded-b-phone");
  });

  const missed = [1, 2, 3, 4, 5].map((i) => `While you were away #${i} (${run})`);
  const queued = `Written offline by Bob (${run})`;

  step("B loses the network, A keeps writing, B comes back and gets everything once, in order", async () => {
    await ctxB.setOffline(true);
    await pageB.locator('.conn[data-status="offline"]').waitFor({ timeout: WAIT });

    // Bob writes while offline: it waits, then goes out after the reconnect.
    await send(pageB, queued);
    await pageB.locator('ol.messages > li[data-status="sending"]', { hasText: queued }).waitFor({ timeout: WAIT });
    await pageB.getByText("Waiting for connection").waitFor({ timeout: WAIT });
    await shot(pageB, "07-offline-b-phone");

    for (const body of missed) {
      await send(pageA, body);
      await waitForBodies(pageA, [body]); // acked before the next one
    }
    await shot(pageA, "07-sent-while-b-offline-a-desktop");

    await ctxB.setOffline(false);
    await waitConnected(pageB, 45_000);
    await waitForBodies(pageB, [hello, reply, ...missed, queued], 30_000);
    await waitForBodies(pageA, [queued], 30_000);
    await waitAllPlaced(pageA);
    await waitAllPlaced(pageB);

    const expected = [hello, reply, ...missed, queued];
    const listA = await shown(pageA);
    const listB = await shown(pageB);
    assertExactlyOnceInOrder(listB, expected, "B after reconnect");
    assertExactlyOnceInOrder(listA, expected, "A");
    assert.deepEqual(
      listB.map((m) => [m.seq, m.body]),
      listA.map((m) => [m.seq, m.body]),
      "A and B see the channel in the same order",
    );
    await shot(pageB, "08-back-online-b-phone");
    await shot(pageA, "08-back-online-a-desktop");
  });

  step("A starts a direct conversation with B, found by display name", async () => {
    const dm = `A private word (${run})`;
    await pageA.getByRole("link", { name: "New direct message" }).click();
    // Part of Bob's display name in other letters' case: not a username prefix.
    await pageA.getByLabel("Find people by name or username").fill(bob.display.slice(1).toUpperCase());
    const result = pageA.locator(".result", { hasText: bob.username });
    await result.waitFor({ timeout: WAIT });
    await shot(pageA, "09-user-search-a-desktop");
    await result.getByRole("button", { name: /Message/ }).click();
    await pageA.locator("#conv-title", { hasText: bob.display }).waitFor({ timeout: WAIT });
    await send(pageA, dm);
    await waitForBodies(pageA, [dm]);

    // B is in the channel view on a phone: go back to the list, the conversation shows up there.
    await pageB.getByRole("link", { name: "Back to conversations" }).click();
    await openConversation(pageB, alice.display);
    await waitForBodies(pageB, [dm]);
    assertExactlyOnceInOrder(await shown(pageB), [dm], "B in the DM");
    await shot(pageB, "09-dm-b-phone");
  });

  step("in the direct conversation each sees the other online, and A sees B typing until B's message", async () => {
    // Both are in the conversation: A on a desktop, B on a phone.
    await pageA.locator('.conv-header .presence-text[data-presence="online"]').waitFor({ timeout: WAIT });
    await pageB.locator('.conv-header .presence-text[data-presence="online"]').waitFor({ timeout: WAIT });
    await pageA
      .locator(".conv-link", { hasText: bob.display })
      .locator('.presence-dot[data-presence="online"]')
      .waitFor({ timeout: WAIT });

    const typed = `Typing this slowly (${run})`;
    const box = pageB.locator("#composer-input");
    await box.pressSequentially(typed.slice(0, 12), { delay: 40 });
    await pageA.locator(".typing-line", { hasText: `${bob.display} is typing…` }).waitFor({ timeout: WAIT });
    await shot(pageA, "09-typing-a-desktop");
    // B's own screen says nothing of B typing.
    assert.equal(await pageB.locator(".typing-line").innerText(), "");
    await box.pressSequentially(typed.slice(12), { delay: 5 });
    await box.press("Enter");
    await waitForBodies(pageA, [typed]);
    // The message ends the indicator at once (not only when it expires).
    await pageA.locator('.typing-line[data-typing="0"]').waitFor({ timeout: 2000 });
  });

  step("A mentions B in the channel while B reads the direct conversation: B's title and list count it, the channel shows it new and mentioning B", async () => {
    const mention = `@${bob.username} have a look (${run})`;
    const title = (page, want) =>
      page.waitForFunction((want) => document.title === want, want, { timeout: WAIT, polling: 100 });
    // B (a phone) has the direct conversation open and has read everything.
    await pageB.locator("#conv-title", { hasText: alice.display }).waitFor({ timeout: WAIT });
    await title(pageB, "Chat");

    await ensureConversation(pageA, `#${channelName}`);
    await send(pageA, mention);
    await waitForBodies(pageA, [mention]);
    await title(pageB, "(1) Chat");

    // In the list: the channel in bold, its badge counting one message that mentions B.
    await pageB.getByRole("link", { name: "Back to conversations" }).click();
    const link = pageB.locator(".conv-link", { hasText: channelName });
    const badge = link.locator(".badge");
    await badge.waitFor({ timeout: WAIT });
    assert.match((await link.getAttribute("class")) ?? "", /\bhas-unread\b/);
    assert.equal(await badge.getAttribute("data-unread"), "1");
    assert.match((await badge.textContent()) ?? "", /1 unread, 1 mentioning you/);
    await shot(pageB, "09-unread-mention-b-phone");

    // Opened: the message is marked as mentioning B, under the "new since you last read" line.
    await openConversation(pageB, channelName);
    const mine = pageB.locator("ol.messages > li.msg", { has: pageB.locator(".msg-body", { hasText: mention }) });
    await mine.waitFor({ timeout: WAIT });
    assert.match((await mine.getAttribute("class")) ?? "", /\bmsg--mentions-me\b/);
    assert.match((await mine.textContent()) ?? "", /mentions you/);
    assert.equal(await mine.locator("mark.mention--me").innerText(), `@${bob.username}`);
    assert.equal(
      await mine.evaluate((el) => el.previousElementSibling?.className ?? ""),
      "unread-line",
      "the unread line is right above the mention",
    );
    assert.equal(await pageB.locator(".unread-line").innerText(), "New since you last read");
    await title(pageB, "Chat");
    await shot(pageB, "09-mentioned-b-phone");

    // A sees the name highlighted as anyone's, not as mentioning A.
    const onA = pageA.locator("ol.messages > li.msg", { has: pageA.locator(".msg-body", { hasText: mention }) });
    assert.doesNotMatch((await onA.getAttribute("class")) ?? "", /msg--mentions-me/);
    assert.equal(await onA.locator(".mention").innerText(), `@${bob.username}`);
    assert.equal(await onA.locator("mark.mention--me").count(), 0);
  });

  const lively = `e2e-dir-${run}`;
  const news = `Fresh news in the directory (${run})`;

  step("A browses the channel directory by activity with the keyboard and joins a channel", async () => {
    // B makes a channel and writes in it (through the app's own calls): the newest activity.
    await pageB.evaluate(
      async ({ name, body }) => {
        const c = await window.chat.createChannel(name, "Lively");
        window.chat.send(c.id, body);
      },
      { name: lively, body: news },
    );

    await pageA.getByRole("link", { name: "Browse channels" }).click();
    await pageA.locator("#browse-title", { hasText: "Browse channels" }).waitFor({ timeout: WAIT });
    const directory = pageA.getByRole("list", { name: "Channel directory" });
    await directory.locator(".result").first().waitFor({ timeout: WAIT });
    await pageA.getByRole("status").filter({ hasText: /Showing \d+ channels/ }).waitFor({ timeout: WAIT });
    await shot(pageA, "09-directory-members-a-desktop");

    // Switch the order with the keyboard: arrow keys move within the radio group.
    await pageA.getByRole("radio", { name: "Most members" }).focus();
    await pageA.keyboard.press("ArrowDown");
    assert.ok(await pageA.getByRole("radio", { name: "Recent activity" }).isChecked());

    // The message is acked before the message server records the activity: reload the order
    // (switch back and forth) until the channel leads it, within a bound.
    const entry = directory.locator(".result", { hasText: `#${lively}` });
    const deadline = Date.now() + WAIT;
    while (!(await directory.locator(".result").first().filter({ hasText: `#${lively}` }).count())) {
      assert.ok(Date.now() < deadline, `#${lively} never came first by recent activity`);
      await pageA.waitForTimeout(300);
      await pageA.getByRole("radio", { name: "Most members" }).check();
      await pageA.getByRole("radio", { name: "Recent activity" }).check();
      await directory.locator(".result").first().waitFor({ timeout: WAIT });
    }
    assert.match(await entry.innerText(), /1 member/);
    assert.match(await entry.innerText(), /active just now/);
    // A's own channel is there to open, not to join.
    const own = directory.locator(".result", { hasText: `#${channelName}` });
    if (await own.count()) assert.equal(await own.getByRole("button", { name: /Join/ }).count(), 0);

    // More pages on request.
    const before = await directory.locator(".result").count();
    const more = pageA.getByRole("button", { name: "Load more channels" });
    if (await more.count()) {
      await more.click();
      await pageA.waitForFunction(
        (n) => document.querySelectorAll('[aria-label="Channel directory"] .result').length > n,
        before,
        { timeout: WAIT, polling: 100 },
      );
    }
    await shot(pageA, "09-directory-activity-a-desktop");

    // Join with the keyboard: focus the button, press Enter.
    await entry.getByRole("button", { name: /Join/ }).focus();
    await pageA.keyboard.press("Enter");
    await pageA.locator("#conv-title", { hasText: `#${lively}` }).waitFor({ timeout: WAIT });
    await waitForBodies(pageA, [news]);
    await shot(pageA, "09-joined-from-directory-a-desktop");
  });

  const bulk = Array.from({ length: 60 }, (_, i) => `Bulk message ${String(i + 1).padStart(2, "0")} (${run})`);

  step("older history pages load when scrolling up", async () => {
    // A writes 60 more (through the app's own send path, quicker than typing each one).
    await openConversation(pageA, channelName);
    const channelId = await pageA.evaluate(() => decodeURIComponent(location.hash.split("/")[2] ?? ""));
    assert.ok(channelId, "channel id in the address");
    await pageA.evaluate(
      ({ id, bodies }) => {
        for (const b of bodies) window.chat.send(id, b);
      },
      { id: channelId, bodies: bulk },
    );
    await waitForBodies(pageA, bulk, 30_000);
    await waitAllPlaced(pageA, 30_000);

    // B starts afresh: only the newest page is loaded at first.
    await pageB.goto(`${BASE_URL}/#/c/${encodeURIComponent(channelId)}`, { waitUntil: "domcontentloaded" });
    await pageB.reload({ waitUntil: "domcontentloaded" });
    await waitConnected(pageB);
    await waitForBodies(pageB, bulk.slice(-10));
    const expected = [hello, reply, ...missed, queued, ...bulk];
    const first = await shown(pageB);
    assert.ok(first.length < expected.length, `only a page is shown at first (${first.length} messages)`);
    await shot(pageB, "09-newest-page-b-phone");

    // Scroll to the top until the beginning of the channel shows.
    const deadline = Date.now() + 30_000;
    while (!(await pageB.getByText(`This is the beginning of #${channelName}`).isVisible())) {
      assert.ok(Date.now() < deadline, "the beginning of the channel never showed up");
      await pageB.locator(".scroller").evaluate((el) => {
        el.scrollTop = 0;
        el.dispatchEvent(new Event("scroll"));
      });
      await pageB.waitForTimeout(300);
    }
    await waitForBodies(pageB, [hello, reply]);
    const all = await shown(pageB);
    assertExactlyOnceInOrder(all, expected, "B after loading older pages");
    assert.equal(all[0].seq, 1, "the first message has seq 1");
    await shot(pageB, "09-scrolled-to-top-b-phone");
  });

  const toEdit = `Edit me please (${run})`;
  const editedBody = `Edited by Alice (${run})`;
  const answer = `Bob answers the edited one (${run})`;

  step("A edits, B reacts, B replies, A deletes: each shows on the other side, live and after a reload", async () => {
    await ensureConversation(pageA, `#${channelName}`);
    await ensureConversation(pageB, `#${channelName}`);
    await send(pageA, toEdit);
    await waitForBodies(pageA, [toEdit]);
    await waitForBodies(pageB, [toEdit]);
    await waitAllPlaced(pageA);
    const liA0 = pageA.locator("ol.messages > li[data-status=\"sent\"]", { has: pageA.locator(".msg-body", { hasText: toEdit }) });
    const id = await liA0.getAttribute("data-id");
    assert.ok(id, "the message has an id");
    const onA = messageById(pageA, id);
    const onB = messageById(pageB, id);

    // A edits inline: Enter saves.
    await onA.hover();
    await onA.getByRole("button", { name: "Edit your message" }).click();
    const editor = onA.getByRole("textbox", { name: "Edit message" });
    await editor.waitFor({ timeout: WAIT });
    await editor.fill(editedBody);
    await editor.press("Enter");
    // B sees the new body and "(edited)" with the time in its title; so does A.
    await onB.locator(".msg-edited", { hasText: "(edited)" }).waitFor({ timeout: WAIT });
    assert.equal(await bodyOf(pageB, id), editedBody);
    assert.match((await onB.locator(".msg-edited").getAttribute("title")) ?? "", /^Edited \S/);
    await onA.locator(".msg-edited", { hasText: "(edited)" }).waitFor({ timeout: WAIT });
    assert.equal(await bodyOf(pageA, id), editedBody);
    assert.equal(await pageB.locator("ol.messages .msg-body", { hasText: toEdit }).count(), 0, "B no longer shows the old body");
    await shot(pageB, "09-edited-b-phone");

    // B reacts with the picker; A sees the count, not pressed (it is B's).
    await onB.getByRole("button", { name: "React to this message" }).click();
    await onB.getByRole("button", { name: "React with thumbs up" }).click();
    await waitReaction(pageB, id, "👍", 1);
    assert.equal(await onB.locator('.reaction[data-emoji="👍"]').getAttribute("aria-pressed"), "true");
    await waitReaction(pageA, id, "👍", 1);
    assert.equal(await onA.locator('.reaction[data-emoji="👍"]').getAttribute("aria-pressed"), "false");

    // A adds the same one with the keyboard (the chip is a toggle button): 2 on both sides.
    await onA.locator('.reaction[data-emoji="👍"]').focus();
    await pageA.keyboard.press("Enter");
    await waitReaction(pageA, id, "👍", 2);
    await waitReaction(pageB, id, "👍", 2);
    assert.equal(await onA.locator('.reaction[data-emoji="👍"]').getAttribute("aria-pressed"), "true");
    assert.equal(await onB.locator('.reaction[data-emoji="👍"]').getAttribute("aria-pressed"), "true");
    // And takes it back: 1 again on both sides, B's still pressed on B's screen.
    await onA.locator('.reaction[data-emoji="👍"]').click();
    await waitReaction(pageA, id, "👍", 1);
    await waitReaction(pageB, id, "👍", 1);
    assert.equal(await onA.locator('.reaction[data-emoji="👍"]').getAttribute("aria-pressed"), "false");
    await shot(pageA, "09-reacted-a-desktop");

    // B replies: the reply shows a preview of the (edited) original on both sides.
    await onB.getByRole("button", { name: /^Reply to/ }).click();
    await pageB.locator(".replying", { hasText: editedBody }).waitFor({ timeout: WAIT });
    await send(pageB, answer);
    await waitForBodies(pageB, [answer]);
    await waitForBodies(pageA, [answer]);
    for (const page of [pageA, pageB]) {
      const reply = page.locator("ol.messages > li", { has: page.locator(".msg-body", { hasText: answer }) });
      const quote = reply.locator(`.reply-quote[data-reply-to="${id}"]`);
      await quote.waitFor({ timeout: WAIT });
      assert.equal(await quote.locator(".reply-preview").innerText(), editedBody);
      assert.match(await quote.locator(".reply-sender").innerText(), /Alice|You/);
    }
    assert.equal(await pageB.locator(".replying").count(), 0, "the reply bar is gone after sending");
    // A clicks the preview: the original gets the focus.
    await pageA.locator(`.reply-quote[data-reply-to="${id}"]`).click();
    await pageA.waitForFunction((id) => document.activeElement?.dataset?.id === id, id, { timeout: WAIT, polling: 100 });
    await shot(pageA, "09-reply-a-desktop");

    // B reloads: the history carries the edit, the reaction (B's, pressed) and the reply preview.
    await pageB.reload({ waitUntil: "domcontentloaded" });
    await waitConnected(pageB);
    await waitForBodies(pageB, [editedBody, answer]);
    await onB.locator(".msg-edited").waitFor({ timeout: WAIT });
    await waitReaction(pageB, id, "👍", 1);
    assert.equal(await onB.locator('.reaction[data-emoji="👍"]').getAttribute("aria-pressed"), "true");
    assert.equal(await pageB.locator(`.reply-quote[data-reply-to="${id}"] .reply-preview`).innerText(), editedBody);

    // A deletes (confirming): both see the tombstone, without body or reactions, and the reply's
    // preview says the original was deleted.
    pageA.once("dialog", (d) => d.accept());
    await onA.hover();
    await onA.getByRole("button", { name: "Delete your message" }).click();
    for (const [page, li] of [
      [pageA, onA],
      [pageB, onB],
    ]) {
      await li.locator(".msg-tombstone", { hasText: "Message deleted" }).waitFor({ timeout: WAIT });
      assert.equal(await li.getAttribute("data-deleted"), "true");
      assert.equal(await li.locator(".msg-body").count(), 0);
      assert.equal(await li.locator(".reaction").count(), 0);
      assert.equal(await li.getByRole("button", { name: /Edit|Delete|React/ }).count(), 0, "no actions on a tombstone");
      await page.locator(`.reply-quote--deleted[data-reply-to="${id}"]`, { hasText: "Message deleted" }).waitFor({ timeout: WAIT });
    }
    assert.equal(await pageB.locator("ol.messages .msg-body", { hasText: editedBody }).count(), 0);
    await shot(pageA, "09-deleted-a-desktop");
    await shot(pageB, "09-deleted-b-phone");

    // B only gets the actions B may use: Reply and React on A's messages, no Edit or Delete.
    const aliceMsg = pageB
      .locator('ol.messages > li[data-status="sent"]', { has: pageB.locator(".msg-body", { hasText: bulk[bulk.length - 1] }) })
      .first();
    await aliceMsg.waitFor({ timeout: WAIT });
    assert.equal(await aliceMsg.getByRole("button", { name: /^Reply to/ }).count(), 1);
    assert.equal(await aliceMsg.getByRole("button", { name: "React to this message" }).count(), 1);
    assert.equal(await aliceMsg.getByRole("button", { name: /^Edit/ }).count(), 0);
    assert.equal(await aliceMsg.getByRole("button", { name: /^Delete/ }).count(), 0);

    // A created the channel: A may delete B's message (not edit it), and does.
    const bobsOnA = pageA.locator("ol.messages > li.msg", { has: pageA.locator(".msg-body", { hasText: answer }) });
    await bobsOnA.hover();
    const ownerDelete = bobsOnA.getByRole("button", { name: `Delete the message from ${bob.display}` });
    assert.equal(await ownerDelete.count(), 1, "the owner is offered Delete on the other's message");
    assert.equal(await bobsOnA.getByRole("button", { name: /^Edit/ }).count(), 0);
    const answerId = await bobsOnA.getAttribute("data-id");
    pageA.once("dialog", (d) => d.accept());
    await ownerDelete.click();
    for (const page of [pageA, pageB]) {
      await messageById(page, answerId).locator(".msg-tombstone", { hasText: "Message deleted" }).waitFor({ timeout: WAIT });
    }
    await shot(pageA, "09-owner-deleted-a-desktop");
  });

  const caption = `A picture and some notes (${run})`;
  const notes = `Notes written by the end-to-end test (${run})\n`;

  step("A attaches a picture and a text file and sends them with a caption: B sees both, live and after a reload", async () => {
    await ensureConversation(pageA, `#${channelName}`);
    await ensureConversation(pageB, `#${channelName}`);
    const fileInput = pageA.locator("#composer-file");
    const composer = pageA.locator("form.composer");
    const chips = composer.locator(".upload");
    const sendButton = composer.getByRole("button", { name: "Send", exact: true });
    await composer.getByRole("button", { name: "Attach files" }).waitFor({ timeout: WAIT });

    // A file attached, then cancelled (or removed, if it was quicker), leaves nothing to send.
    await fileInput.setInputFiles({ name: "cancel-me.txt", mimeType: "text/plain", buffer: Buffer.from("never sent") });
    await composer.getByRole("button", { name: /^(Cancel uploading|Remove) cancel-me\.txt$/ }).click();
    await chips.first().waitFor({ state: "detached", timeout: WAIT });
    assert.ok(await sendButton.isDisabled(), "Send is disabled with no text and no file");

    // The picture (96×72) and the notes: each a chip that uploads, then is ready.
    await fileInput.setInputFiles([
      { name: "square.png", mimeType: "image/png", buffer: png(96, 72) },
      { name: "notes.txt", mimeType: "text/plain", buffer: Buffer.from(notes) },
    ]);
    await chips.nth(1).waitFor({ timeout: WAIT }); // rendered after the change event
    assert.equal(await chips.count(), 2);
    await pageA.waitForFunction(
      () => {
        const stages = [...document.querySelectorAll(".composer .upload")].map((e) => e.dataset.stage);
        return stages.length === 2 && stages.every((s) => s === "done");
      },
      undefined,
      { timeout: WAIT, polling: 100 },
    );
    assert.ok(await sendButton.isEnabled(), "Send is enabled once the files are ready");
    await shot(pageA, "09-attachments-ready-a-desktop");
    await send(pageA, caption);
    await waitForBodies(pageA, [caption]);
    assert.equal(await chips.count(), 0, "the chips left with the message");
    await waitAllPlaced(pageA);
    const sent = pageA.locator('ol.messages > li[data-status="sent"]', { has: pageA.locator(".msg-body", { hasText: caption }) });
    const id = await sent.getAttribute("data-id");
    assert.ok(id, "the message has an id");

    /** The message shows the picture in a box of its shape, loaded, and the notes as a chip. */
    async function seesAttachments(page, who) {
      const li = messageById(page, id);
      await li.waitFor({ timeout: WAIT });
      await li.scrollIntoViewIfNeeded(); // pictures load when they come into view
      const box = li.locator(".attachment-image");
      await box.waitFor({ timeout: WAIT });
      const bb = await box.boundingBox();
      assert.ok(bb && Math.abs(bb.width / bb.height - 96 / 72) < 0.05, `${who}: the box has the picture's shape (${bb?.width}×${bb?.height})`);
      const img = box.locator("img");
      await img.waitFor({ timeout: WAIT });
      await page.waitForFunction(
        (id) => {
          const el = document.querySelector(`ol.messages > li[data-id="${id}"] .attachment-image img`);
          return !!el && el.complete && el.naturalWidth > 0;
        },
        id,
        { timeout: WAIT, polling: 100 },
      );
      assert.ok((await img.evaluate((el) => el.naturalWidth)) > 0, `${who}: the picture loaded`);
      // chat-media made its thumbnail (a JPEG beside the file) well before the message arrived.
      assert.match((await img.getAttribute("src")) ?? "", /\/chat-attachments\/t\/[0-9a-f-]{36}\.jpg\?/, `${who}: the thumbnail, from the object store`);
      const after = await box.boundingBox();
      assert.equal(Math.round(after.height), Math.round(bb.height), `${who}: nothing moved when the picture loaded`);
      await li.getByRole("link", { name: "Open square.png in a new tab" }).waitFor({ timeout: WAIT });
      await li.getByRole("button", { name: /^Download notes\.txt, \d+ B$/ }).waitFor({ timeout: WAIT });
    }

    await waitForBodies(pageB, [caption]);
    await seesAttachments(pageB, "B live");
    await seesAttachments(pageA, "A");
    await shot(pageB, "09-attachments-b-phone");

    // A opens the picture: the file itself, in a new tab.
    const [tab] = await Promise.all([
      ctxA.waitForEvent("page", { timeout: WAIT }),
      messageById(pageA, id).getByRole("link", { name: "Open square.png in a new tab" }).click(),
    ]);
    await tab.waitForLoadState("domcontentloaded");
    assert.match(tab.url(), /\/chat-attachments\/o\//);
    await tab.close();

    // B reloads: history carries the files; B downloads the notes.
    await pageB.reload({ waitUntil: "domcontentloaded" });
    await waitConnected(pageB);
    await waitForBodies(pageB, [caption]);
    await seesAttachments(pageB, "B after reload");
    const [download] = await Promise.all([
      pageB.waitForEvent("download", { timeout: WAIT }),
      messageById(pageB, id).getByRole("button", { name: /^Download notes\.txt/ }).click(),
    ]);
    assert.equal(download.suggestedFilename(), "notes.txt");
    assert.equal(readFileSync(await download.path(), "utf8"), notes);

    // A file alone, without a caption: no empty text bubble, just the file.
    await fileInput.setInputFiles({ name: "alone.txt", mimeType: "text/plain", buffer: Buffer.from("just a file") });
    await composer.locator('.upload[data-stage="done"]').waitFor({ timeout: WAIT });
    await sendButton.click();
    for (const page of [pageA, pageB]) {
      const li = page.locator('ol.messages > li[data-status="sent"]', {
        has: page.getByRole("button", { name: /^Download alone\.txt/ }),
      });
      await li.waitFor({ timeout: WAIT });
      assert.equal(await li.locator(".msg-body").count(), 0, "no text bubble for a message of files only");
    }
    await shot(pageB, "09-file-only-b-phone");
  });

  step("screenshots at the other widths", async () => {
    await pageA.setViewportSize(PHONE);
    await pageA.getByRole("link", { name: "Back to conversations" }).click();
    await pageA.locator(".sidebar").waitFor({ timeout: WAIT });
    await shot(pageA, "10-list-a-phone");
    await openConversation(pageA, channelName);
    await shot(pageA, "10-conversation-a-phone");
    await pageB.setViewportSize(DESKTOP);
    await openConversation(pageB, channelName);
    await shot(pageB, "10-conversation-b-desktop");
  });

  step("A logs out and logs back in", async () => {
    await pageA.getByRole("button", { name: "Log out" }).click();
    await pageA.getByRole("heading", { name: "Log in" }).waitFor({ timeout: WAIT });
    assert.equal(await pageA.evaluate(() => localStorage.getItem("chat.session")), null, "tokens are forgotten");
    await pageA.getByLabel("Username").fill(alice.username);
    await pageA.getByLabel("Password").fill(alice.password);
    await pageA.locator("form").getByRole("button", { name: "Log in" }).click();
    await waitConnected(pageA);
    await openConversation(pageA, channelName);
    await waitForBodies(pageA, bulk.slice(-5)); // the newest page
    const stored = await pageA.evaluate(() => JSON.parse(localStorage.getItem("chat.session") ?? "null"));
    assert.ok(stored?.access_token && stored?.refresh_token, "tokens are kept in localStorage");
  });

  step("B leaves the channel", async () => {
    await openConversation(pageB, channelName);
    pageB.once("dialog", (d) => d.accept());
    await pageB.locator(".conv-header").getByRole("button", { name: /Leave/ }).click();
    await pageB.locator(".conv-link", { hasText: channelName }).waitFor({ state: "detached", timeout: WAIT });
    await shot(pageB, "11-left-b-desktop");
    // After a reload too: the server agrees.
    await pageB.reload({ waitUntil: "domcontentloaded" });
    await waitConnected(pageB);
    await pageB.locator(".conv-link", { hasText: alice.display }).waitFor({ timeout: WAIT });
    assert.equal(await pageB.locator(".conv-link", { hasText: channelName }).count(), 0);
  });

  step("A sees B go offline, with a last-seen time, when B's page closes", async () => {
    await pageA.setViewportSize(DESKTOP); // the list beside the conversation
    await openConversation(pageA, bob.display);
    await pageA.locator('.conv-header .presence-text[data-presence="online"]').waitFor({ timeout: WAIT });
    await pageB.close();
    const offline = pageA.locator('.conv-header .presence-text[data-presence="offline"]');
    await offline.waitFor({ timeout: WAIT });
    assert.match(await offline.innerText(), /Last seen just now/);
    await shot(pageA, "12-peer-offline-a-desktop");
  });

  step("no uncaught errors in the pages", async () => {
    assert.deepEqual(pageErrors, []);
  });
});
