// zerocast viewer: H.264 over WebSocket (helix's browser stream protocol),
// decoded with WebCodecs, drawn on a canvas; keyboard and mouse go back.
"use strict";

const MSG = {
  VIDEO: 0x01, STRIPES: 0x02, KEY: 0x10, CLICK: 0x11, ABS: 0x12, INIT: 0x30, PING: 0x40, PONG: 0x41,
  CURSOR_IMAGE: 0x50, CURSOR_POS: 0x51, CLIPBOARD: 0x60, TEXT: 0x61, RESIZE: 0x62,
};
// The session's limits (zerocast-session): clipboard and typed text, bytes of UTF-8.
const MAX_CLIPBOARD = 256 * 1024, MAX_TYPED = 4096;
const params = new URLSearchParams(location.search);
const scanout = Number(params.get("scanout") || 0);
const canvas = document.getElementById("screen");
// The keyboard's target: key presses, and the text an IME composes.
const keys = document.getElementById("keys");
// The guest's screen follows this page's size (?resize=off: it does not).
const remoteResize = params.get("resize") !== "off";
// The picture comes in stripes, only the changed ones (?stripes=off: the
// single whole-picture stream helix's clients get).
const striped = params.get("stripes") !== "off";
// Benchmarks: read the frame stamp (zerocast-frame's stamp) off each picture
// shown, for latency from the guest's flush of that very frame.
const readStamps = params.get("stamps") === "on";
const ctx = canvas.getContext("2d", { alpha: false, desynchronized: true });
const statsBox = document.getElementById("stats");
const statusBox = document.getElementById("status");

// Everything the page measures; read by tests and the benchmark (DevTools).
const stats = window.zerocastStats = {
  connected: false, configured: false, codec: "", width: 0, height: 0,
  received: 0, decoded: 0, keyframes: 0, dropped: 0, errors: 0, lastError: "",
  fps: 0, bitrate_bps: 0, latency_p50_ms: 0, latency_p95_ms: 0, clockOffsetUs: 0, rttMs: 0,
  latencies: [],           // recent capture -> decoded latencies, ms
  // The guest's hardware cursor (zerocast's 0x50/0x51): images and moves
  // received, its size, hotspot and last hotspot position.
  cursor: { images: 0, moves: 0, visible: false, width: 0, height: 0, hotX: 0, hotY: 0, x: 0, y: 0,
            echoes: [] },     // ms from a pointer move sent to the guest's next cursor move back
  // The guest session's extension (0x60-0x62): the guest's clipboard texts
  // received (and how many reached the local clipboard), pastes and typed
  // texts sent, the mode last asked for.
  session: { clipboardIn: 0, clipboardText: "", clipboardWritten: 0, clipboardError: "",
             clipboardOut: 0, textOut: 0, resize: "" },
  // Striped frames (0x02) received, their records, and the rows those
  // covered in frames that were not keyframes.
  stripes: { frames: 0, records: 0, deltaFrames: 0, deltaRows: 0 },
  // With ?stamps=on: [stamp, µs since the Unix epoch on the host's clock]
  // of each picture shown, the latest 4096.
  stamps: [],
};

let ws = null, decoder = null, waitingForKey = true, reconnects = 0;
let clockOffsetUs = 0, bestRttUs = Infinity, pingSeq = 0;
let secondFrames = 0, secondBytes = 0;

const nowEpochUs = () => (performance.timeOrigin + performance.now()) * 1000;

function avcCodecString(au) {
  // Profile, constraints and level straight from the SPS (NAL type 7).
  for (let i = 0; i + 4 < au.length; i++) {
    if (au[i] === 0 && au[i + 1] === 0 && au[i + 2] === 1 && (au[i + 3] & 0x1f) === 7) {
      const hex = (b) => b.toString(16).padStart(2, "0");
      return "avc1." + hex(au[i + 4]) + hex(au[i + 5]) + hex(au[i + 6]);
    }
  }
  return "avc1.42e033";
}

// A picture of `width` x `height` captured at `pts` (µs, host clock) is on screen.
function countShown(pts, width, height) {
  const lat = (nowEpochUs() + clockOffsetUs - pts) / 1000;
  stats.latencies.push(lat);
  if (stats.latencies.length > 600) stats.latencies.shift();
  stats.decoded++;
  secondFrames++;
  if (canvas.width !== width || canvas.height !== height) {
    canvas.width = width;
    canvas.height = height;
    applyCursor();  // the picture's scale changed, so does the cursor's
  }
}

function onDecoded(frame) {
  countShown(frame.timestamp, frame.displayWidth, frame.displayHeight);
  ctx.drawImage(frame, 0, 0);
  frame.close();
  noteStamp();
}

// The stamp's layout: 34 blocks of 16x16 pixels in the top-left corner, a
// white and a black marker, 24 bits of the number, 8 check bits.
const STAMP_BLOCK = 16, STAMP_BLOCKS = 34;

function noteStamp() {
  if (!readStamps || canvas.width < STAMP_BLOCK * STAMP_BLOCKS || canvas.height < STAMP_BLOCK) return;
  const row = ctx.getImageData(0, STAMP_BLOCK / 2, STAMP_BLOCK * STAMP_BLOCKS, 1).data;
  const bit = (i) => row[(i * STAMP_BLOCK + STAMP_BLOCK / 2) * 4 + 1] >= 128;
  if (!bit(0) || bit(1)) return;
  let n = 0, check = 0;
  for (let i = 2; i < 26; i++) n = n * 2 + (bit(i) ? 1 : 0);
  for (let i = 26; i < STAMP_BLOCKS; i++) check = check * 2 + (bit(i) ? 1 : 0);
  if (check !== ((n ^ (n >> 8) ^ (n >> 16) ^ 0x5A) & 0xFF)) return;
  const last = stats.stamps[stats.stamps.length - 1];
  if (last && last[0] === n) return;
  stats.stamps.push([n, Math.round(nowEpochUs() + clockOffsetUs)]);
  if (stats.stamps.length > 4096) stats.stamps.shift();
}

// Striped frames (0x02): each stripe is its own stream with its own
// decoder, keyed by its rows. A frame is drawn once all its stripes are
// decoded, and frames in the order they came, so a slower stripe never
// shows an older picture over a newer one.
const stripes = new Map();    // "y:height" -> { decoder, configured, waiting, queue }
let stripedFrames = [];       // [{ pts, width, height, left, pictures: [[VideoFrame, y]] }]
const MAX_STRIPED_PENDING = 60;
// More decoders than this is not a picture's stripes (a 4K picture in 16-row
// stripes, and its whole picture, has 136).
const MAX_STRIPES = 256;

function resetStripes() {
  for (const s of stripes.values()) if (s.decoder.state !== "closed") s.decoder.close();
  stripes.clear();
  for (const f of stripedFrames) for (const [picture] of f.pictures) picture.close();
  stripedFrames = [];
}

function stripe(y, height) {
  const id = y + ":" + height;
  let s = stripes.get(id);
  if (!s) {
    s = { configured: false, waiting: true, queue: [] };
    s.decoder = new VideoDecoder({
      output: (picture) => {
        const f = s.queue.shift();
        if (!f) { picture.close(); return; }
        f.pictures.push([picture, y]);
        f.left--;
        drawStripedFrames();
      },
      error: onDecoderError,
    });
    stripes.set(id, s);
  }
  return s;
}

function drawStripedFrames() {
  while (stripedFrames.length > 0 && stripedFrames[0].left === 0) {
    const f = stripedFrames.shift();
    countShown(f.pts, f.width, f.height);
    for (const [picture, y] of f.pictures) {
      ctx.drawImage(picture, 0, y);
      picture.close();
    }
    noteStamp();
  }
}

function onStripes(b) {
  const key = (b[2] & 1) === 1;
  const view = new DataView(b.buffer, b.byteOffset, b.byteLength);
  const pts = Number(view.getBigUint64(3));
  const f = { pts, width: view.getUint16(11), height: view.getUint16(13), left: 0, pictures: [] };
  stats.received++;
  secondBytes += b.length;
  stats.stripes.frames++;
  if (key) stats.keyframes++; else stats.stripes.deltaFrames++;
  if (stripedFrames.length >= MAX_STRIPED_PENDING) {
    onDecoderError(new Error("stripe decoders fell behind"));
    return;
  }
  stripedFrames.push(f);
  for (let at = 15; at < b.length;) {
    if (at + 9 > b.length) { onDecoderError(new Error("a stripe record is cut")); return; }
    const y = view.getUint16(at), height = view.getUint16(at + 2);
    const stripeKey = (b[at + 4] & 1) === 1, len = view.getUint32(at + 5);
    const au = b.subarray(at + 9, at + 9 + len);
    at += 9 + len;
    if (au.length !== len || y + height > f.height) {
      onDecoderError(new Error("a stripe record is outside the frame"));
      return;
    }
    stats.stripes.records++;
    if (!key) stats.stripes.deltaRows += height;
    if (!stripes.has(y + ":" + height) && stripes.size >= MAX_STRIPES) {
      onDecoderError(new Error("too many stripes"));
      return;
    }
    const s = stripe(y, height);
    if (s.waiting && !stripeKey) { stats.dropped++; continue; }
    if (!s.configured) {
      stats.codec = avcCodecString(au);
      s.decoder.configure({ codec: stats.codec, optimizeForLatency: true, avc: { format: "annexb" } });
      s.configured = stats.configured = true;
    }
    s.waiting = false;
    f.left++;
    s.queue.push(f);
    try {
      s.decoder.decode(new EncodedVideoChunk({ type: stripeKey ? "key" : "delta", timestamp: pts, data: au }));
    } catch (e) {
      onDecoderError(e);
      return;
    }
  }
  drawStripedFrames();
}

function onDecoderError(e) {
  stats.errors++;
  stats.lastError = String(e && e.message || e);
  resetDecoder();
  // Ask the host for a fresh keyframe rather than wait for one.
  if (ws && ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify({ type: "init" }));
}

function resetDecoder() {
  resetStripes();
  if (decoder && decoder.state !== "closed") decoder.close();
  decoder = new VideoDecoder({ output: onDecoded, error: onDecoderError });
  stats.configured = false;
  waitingForKey = true;
}

function onVideo(b) {
  const key = (b[2] & 1) === 1;
  const view = new DataView(b.buffer, b.byteOffset, b.byteLength);
  const pts = Number(view.getBigUint64(3));
  const au = b.subarray(15);
  stats.received++;
  secondBytes += b.length;
  if (waitingForKey && !key) { stats.dropped++; return; }
  if (key) stats.keyframes++;
  if (!stats.configured) {
    const codec = avcCodecString(au);
    decoder.configure({ codec, optimizeForLatency: true, avc: { format: "annexb" } });
    stats.codec = codec;
    stats.configured = true;
  }
  waitingForKey = false;
  try {
    decoder.decode(new EncodedVideoChunk({ type: key ? "key" : "delta", timestamp: pts, data: au }));
  } catch (e) {
    onDecoderError(e);
  }
}

// The guest's cursor is drawn by the browser as the canvas's CSS cursor, so
// the pointer moves at the browser's speed, not the video's. Without one
// (none sent, or hidden) the page shows the normal arrow.
let cursorPixels = null;      // a canvas holding the guest's image, full size
let cursorCss = { key: "", value: "default" };

function onCursorImage(b) {
  const v = new DataView(b.buffer, b.byteOffset, b.byteLength);
  const hotX = v.getUint16(1), hotY = v.getUint16(3), w = v.getUint16(5), h = v.getUint16(7);
  if (w === 0 || h === 0 || b.length !== 9 + w * h * 4) return;
  const img = document.createElement("canvas");
  img.width = w;
  img.height = h;
  img.getContext("2d").putImageData(new ImageData(new Uint8ClampedArray(b.slice(9)), w, h), 0, 0);
  cursorPixels = img;
  Object.assign(stats.cursor, { width: w, height: h, hotX, hotY });
  stats.cursor.images++;
  cursorCss.key = "";
  applyCursor();
}

// When the last pointer move went out: the guest's cursor moving back in
// answer measures the round trip the local CSS cursor saves.
let pointerSentAt = 0;

function onCursorPos(b) {
  if (pointerSentAt) {
    stats.cursor.echoes.push(performance.now() - pointerSentAt);
    if (stats.cursor.echoes.length > 200) stats.cursor.echoes.shift();
    pointerSentAt = 0;
  }
  const v = new DataView(b.buffer, b.byteOffset, b.byteLength);
  stats.cursor.visible = b[1] !== 0;
  stats.cursor.x = v.getInt32(2);
  stats.cursor.y = v.getInt32(6);
  stats.cursor.moves++;
  applyCursor();
}

// Sets the CSS cursor: the guest's image scaled as the picture is (at most
// the 128x128 browsers show), made into a PNG data: URL once per image and
// scale.
function applyCursor() {
  const c = stats.cursor;
  if (!c.visible || !cursorPixels) {
    cursorCss.key = "";
    canvas.style.cursor = "default";
    return;
  }
  const r = canvas.getBoundingClientRect();
  const fit = Math.min(r.width / canvas.width, r.height / canvas.height) || 1;
  const scale = Math.min(fit, 128 / c.width, 128 / c.height);
  const w = Math.max(1, Math.round(c.width * scale)), h = Math.max(1, Math.round(c.height * scale));
  const key = `${c.images}:${w}x${h}`;
  if (key !== cursorCss.key) {
    const small = document.createElement("canvas");
    small.width = w;
    small.height = h;
    small.getContext("2d").drawImage(cursorPixels, 0, 0, w, h);
    const hx = Math.min(w - 1, Math.round(c.hotX * scale)), hy = Math.min(h - 1, Math.round(c.hotY * scale));
    cursorCss = { key, value: `url(${small.toDataURL("image/png")}) ${hx} ${hy}, default` };
  }
  if (canvas.style.cursor !== cursorCss.value) canvas.style.cursor = cursorCss.value;
}

addEventListener("resize", applyCursor);

// The guest's clipboard changed: it goes to this computer's clipboard
// (the browser allows that while the page has focus).
function onGuestClipboard(b) {
  const text = new TextDecoder().decode(b.subarray(1));
  const s = stats.session;
  s.clipboardIn++;
  s.clipboardText = text;
  if (navigator.clipboard) {
    navigator.clipboard.writeText(text).then(() => { s.clipboardWritten++; }, (e) => { s.clipboardError = String(e); });
  }
}

// 0x60 or 0x61 with `text` as UTF-8, if within `max` bytes.
function sendText(type, text, max) {
  const bytes = new TextEncoder().encode(text);
  if (bytes.length > max) {
    statusBox.textContent = `not sent: ${bytes.length} bytes of text, more than the ${max} the guest takes`;
    return false;
  }
  const b = new Uint8Array(1 + bytes.length);
  b[0] = type;
  b.set(bytes, 1);
  send(b);
  return true;
}

// The size this page shows the picture at, in device pixels: the mode the
// guest gets when this viewer has control (the host rounds it to a mode).
let sentSize = "", resizeTimer = 0;
function reportSize() {
  if (!remoteResize) return;
  const r = canvas.getBoundingClientRect(), dpr = devicePixelRatio || 1;
  const w = Math.min(0xffff, Math.round(r.width * dpr)), h = Math.min(0xffff, Math.round(r.height * dpr));
  const size = `${w}x${h}`;
  if (w === 0 || h === 0 || size === sentSize || !ws || ws.readyState !== WebSocket.OPEN) return;
  const b = new Uint8Array(5), v = new DataView(b.buffer);
  b[0] = MSG.RESIZE;
  v.setUint16(1, w);
  v.setUint16(3, h);
  send(b);
  sentSize = stats.session.resize = size;
}
addEventListener("resize", () => { clearTimeout(resizeTimer); resizeTimer = setTimeout(reportSize, 300); });

function onMessage(ev) {
  const b = new Uint8Array(ev.data);
  if (b.length === 0) return;
  switch (b[0]) {
    case MSG.INIT: {
      const v = new DataView(b.buffer);
      stats.width = v.getUint16(2);
      stats.height = v.getUint16(4);
      resetDecoder();
      break;
    }
    case MSG.VIDEO: onVideo(b); break;
    case MSG.STRIPES: onStripes(b); break;
    case MSG.CURSOR_IMAGE: onCursorImage(b); break;
    case MSG.CURSOR_POS: onCursorPos(b); break;
    case MSG.CLIPBOARD: onGuestClipboard(b); break;
    case MSG.PONG: {
      const v = new DataView(b.buffer);
      const sent = Number(v.getBigUint64(5)), server = Number(v.getBigUint64(13));
      const now = performance.now() * 1000, rtt = now - sent;
      // Offset from the fastest round trip: least queueing, best estimate.
      if (rtt <= bestRttUs * 1.5) {
        bestRttUs = Math.min(bestRttUs, rtt);
        clockOffsetUs = server + rtt / 2 - nowEpochUs();
        stats.clockOffsetUs = Math.round(clockOffsetUs);
        stats.rttMs = rtt / 1000;
      }
      break;
    }
  }
}

function send(bytes) {
  if (ws && ws.readyState === WebSocket.OPEN) ws.send(bytes);
}

function ping() {
  const b = new Uint8Array(13), v = new DataView(b.buffer);
  b[0] = MSG.PING;
  v.setUint32(1, ++pingSeq);
  v.setBigUint64(5, BigInt(Math.round(performance.now() * 1000)));
  send(b);
}

function connect() {
  const url = (location.protocol === "https:" ? "wss://" : "ws://") + location.host + "/ws?scanout=" + scanout +
    (striped ? "&stripes=1" : "") + "&token=" + encodeURIComponent(params.get("token") || "");
  ws = new WebSocket(url);
  ws.binaryType = "arraybuffer";
  ws.onopen = () => {
    stats.connected = true;
    statusBox.textContent = "connected";
    ws.send(JSON.stringify({ type: "init", width: innerWidth, height: innerHeight }));
    ping();
    sentSize = "";
    reportSize();
  };
  ws.onmessage = onMessage;
  ws.onclose = (ev) => {
    stats.connected = false;
    // The gateway lets go of what a closed viewer held: nothing is held now.
    heldKeys.clear();
    heldButtons.clear();
    statusBox.textContent = "disconnected" + (ev.reason ? ": " + ev.reason : "") + " — retrying";
    if (reconnects++ < 100) setTimeout(connect, 1000);
  };
}

function percentile(values, p) {
  if (values.length === 0) return 0;
  const s = [...values].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil(p / 100 * s.length) - 1))];
}

setInterval(ping, 500);
setInterval(() => {
  stats.fps = secondFrames;
  stats.bitrate_bps = secondBytes * 8;
  secondFrames = 0;
  secondBytes = 0;
  const recent = stats.latencies.slice(-120);
  stats.latency_p50_ms = percentile(recent, 50);
  stats.latency_p95_ms = percentile(recent, 95);
  statsBox.textContent =
    `${stats.width}x${stats.height}  ${stats.codec}\n` +
    `fps        ${stats.fps}\n` +
    `latency    p50 ${stats.latency_p50_ms.toFixed(1)} ms  p95 ${stats.latency_p95_ms.toFixed(1)} ms\n` +
    `bitrate    ${(stats.bitrate_bps / 1e6).toFixed(2)} Mbit/s\n` +
    `decoded    ${stats.decoded}  keyframes ${stats.keyframes}\n` +
    `dropped    ${stats.dropped}  errors ${stats.errors}\n` +
    `cursor     ${!cursorPixels ? "none (arrow)" : !stats.cursor.visible ? "hidden (arrow)" :
      `${stats.cursor.width}x${stats.cursor.height} at ${stats.cursor.x},${stats.cursor.y}`}`;
  if (ws && ws.readyState === WebSocket.OPEN) {
    ws.send(JSON.stringify({
      type: "stats", decoded: stats.decoded, keyframes: stats.keyframes, dropped: stats.dropped,
      errors: stats.errors, fps: stats.fps, latency_p50_ms: stats.latency_p50_ms,
      latency_p95_ms: stats.latency_p95_ms, bitrate_bps: stats.bitrate_bps,
      width: stats.width, height: stats.height,
    }));
  }
}, 1000);

// Input: Linux evdev key codes (what helix sends and what guests read).
const EVDEV = {
  Escape: 1, Digit1: 2, Digit2: 3, Digit3: 4, Digit4: 5, Digit5: 6, Digit6: 7, Digit7: 8, Digit8: 9,
  Digit9: 10, Digit0: 11, Minus: 12, Equal: 13, Backspace: 14, Tab: 15, KeyQ: 16, KeyW: 17, KeyE: 18,
  KeyR: 19, KeyT: 20, KeyY: 21, KeyU: 22, KeyI: 23, KeyO: 24, KeyP: 25, BracketLeft: 26,
  BracketRight: 27, Enter: 28, ControlLeft: 29, KeyA: 30, KeyS: 31, KeyD: 32, KeyF: 33, KeyG: 34,
  KeyH: 35, KeyJ: 36, KeyK: 37, KeyL: 38, Semicolon: 39, Quote: 40, Backquote: 41, ShiftLeft: 42,
  Backslash: 43, KeyZ: 44, KeyX: 45, KeyC: 46, KeyV: 47, KeyB: 48, KeyN: 49, KeyM: 50, Comma: 51,
  Period: 52, Slash: 53, ShiftRight: 54, AltLeft: 56, Space: 57, CapsLock: 58, F1: 59, F2: 60,
  F3: 61, F4: 62, F5: 63, F6: 64, F7: 65, F8: 66, F9: 67, F10: 68, F11: 87, F12: 88,
  ControlRight: 97, AltRight: 100, Home: 102, ArrowUp: 103, PageUp: 104, ArrowLeft: 105,
  ArrowRight: 106, End: 107, ArrowDown: 108, PageDown: 109, Insert: 110, Delete: 111,
  MetaLeft: 125, MetaRight: 126,
};

// What this page holds down in the guest (evdev key codes, button numbers):
// a page that loses focus never hears those keys' and buttons' releases, so
// it sends them itself (releaseHeld) rather than leave, say, Ctrl stuck.
const heldKeys = new Set(), heldButtons = new Set();

function sendKey(code, down, modifiers) {
  const b = new Uint8Array(6), v = new DataView(b.buffer);
  b[0] = MSG.KEY;
  b[2] = down ? 1 : 0;
  b[3] = modifiers;
  v.setUint16(4, code);
  send(b);
}

function sendButton(number, down) {
  send(new Uint8Array([MSG.CLICK, 2, down ? 1 : 0, number]));
}

// Ctrl+V (or Cmd+V) is held back until the browser's paste event has sent
// this computer's clipboard to the guest, so the guest pastes that.
let pendingPaste = null;

function flushPaste() {
  if (!pendingPaste) return;
  const { code, modifiers } = pendingPaste;
  pendingPaste = null;
  heldKeys.add(code);
  sendKey(code, true, modifiers);
}

function key(ev, down) {
  // An IME or a dead key is composing: its text comes at compositionend.
  if (ev.isComposing || ev.key === "Process" || ev.key === "Dead") return;
  const code = EVDEV[ev.code];
  const modifiers = (ev.shiftKey ? 1 : 0) | (ev.ctrlKey ? 2 : 0) | (ev.altKey ? 4 : 0) | (ev.metaKey ? 8 : 0);
  if (!code) {
    // A key the guest's keymap lacks that makes a character: sent as text.
    if (down && !ev.ctrlKey && !ev.metaKey && [...ev.key].length === 1) {
      ev.preventDefault();
      if (sendText(MSG.TEXT, ev.key, MAX_TYPED)) stats.session.textOut++;
    }
    return;
  }
  if (down && ev.code === "KeyV" && (ev.ctrlKey || ev.metaKey) && !ev.repeat) {
    // No preventDefault: the browser's paste event follows.
    pendingPaste = { code, modifiers };
    setTimeout(flushPaste, 200);
    return;
  }
  ev.preventDefault();
  if (!down) flushPaste();
  if (down) heldKeys.add(code); else heldKeys.delete(code);
  sendKey(code, down, modifiers);
}

// This computer's clipboard to the guest's, on the user's paste.
document.addEventListener("paste", (e) => {
  e.preventDefault();
  const text = e.clipboardData ? e.clipboardData.getData("text/plain") : "";
  if (text && sendText(MSG.CLIPBOARD, text, MAX_CLIPBOARD)) stats.session.clipboardOut++;
  // The guest's agent takes the clipboard before the V arrives.
  if (pendingPaste) setTimeout(flushPaste, 30);
});

// Text an IME (or a dead key) composed, typed in the guest as text.
keys.addEventListener("compositionend", (e) => {
  if (e.data && sendText(MSG.TEXT, e.data, MAX_TYPED)) stats.session.textOut++;
  keys.value = "";
});
// Text inserted without a composition (an emoji picker, a handwriting or
// voice input) likewise.
keys.addEventListener("input", (e) => {
  if (e.isComposing) return;
  if (e.inputType === "insertText" && e.data && sendText(MSG.TEXT, e.data, MAX_TYPED)) stats.session.textOut++;
  keys.value = "";
});

function releaseHeld() {
  for (const code of heldKeys) sendKey(code, false, 0);
  for (const number of heldButtons) sendButton(number, false);
  heldKeys.clear();
  heldButtons.clear();
}

function pointer(ev) {
  const r = canvas.getBoundingClientRect();
  // The picture is letterboxed inside the canvas box (object-fit: contain).
  const scale = Math.min(r.width / canvas.width, r.height / canvas.height);
  const w = canvas.width * scale, h = canvas.height * scale;
  const x = (ev.clientX - r.left - (r.width - w) / 2) / w;
  const y = (ev.clientY - r.top - (r.height - h) / 2) / h;
  const b = new Uint8Array(10), v = new DataView(b.buffer);
  b[0] = MSG.ABS;
  b[1] = 1;
  v.setInt16(2, Math.round(Math.min(1, Math.max(0, x)) * 4096));
  v.setInt16(4, Math.round(Math.min(1, Math.max(0, y)) * 4096));
  v.setInt16(6, 4096);
  v.setInt16(8, 4096);
  send(b);
  if (!pointerSentAt) pointerSentAt = performance.now();
}

function button(ev, down) {
  pointer(ev);
  const number = [1, 2, 3, 4, 5][ev.button] || 1;
  if (down) heldButtons.add(number); else heldButtons.delete(number);
  sendButton(number, down);
  ev.preventDefault();
}

keys.addEventListener("keydown", (e) => key(e, true));
keys.addEventListener("keyup", (e) => key(e, false));
canvas.addEventListener("mousemove", pointer);
canvas.addEventListener("mousedown", (e) => { keys.focus(); button(e, true); });
canvas.addEventListener("mouseup", (e) => button(e, false));
canvas.addEventListener("contextmenu", (e) => e.preventDefault());
// Focus gone (another window or tab, or another element of the page) or the
// page hidden: the releases would go elsewhere, so send them now.
keys.addEventListener("blur", releaseHeld);
addEventListener("blur", releaseHeld);
document.addEventListener("visibilitychange", () => { if (document.hidden) releaseHeld(); });
canvas.addEventListener("wheel", (e) => {
  e.preventDefault();
  const b = new Uint8Array(10), v = new DataView(b.buffer);
  b[0] = MSG.CLICK;
  b[1] = 3;
  v.setFloat32(2, e.deltaX, true);
  v.setFloat32(6, e.deltaY, true);
  send(b);
}, { passive: false });

if (typeof VideoDecoder === "undefined") {
  statusBox.textContent = "this browser has no WebCodecs VideoDecoder (use Chromium, or serve over https/localhost)";
} else {
  connect();
  keys.focus();
}
