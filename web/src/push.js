// Push notifications. A phone gets an FCM registration token from the platform and
// registers it in users/{uid}/settings/notifications ({devices: {deviceId: {token, platform}},
// changed: deviceId}, beside the preferences: one device per write, firestore.rules); the bank
// sends to it through FCM. The local stack has no FCM: its FCM-compatible sink records what
// was sent, and this app reads the messages for its own token from the sink, as the device
// would receive them.
import { deleteField, doc, setDoc } from "firebase/firestore";
import { config, db } from "./firebase.js";

const listeners = new Set();
let messages = [];
let timer = null;
let since = 0;

function randomId(prefix) {
  const bytes = new Uint8Array(12);
  crypto.getRandomValues(bytes);
  return prefix + [...bytes].map((b) => b.toString(16).padStart(2, "0")).join("");
}

/** This browser's device registration for `uid` (made once, kept in localStorage, and
 * written again at every sign-in: the same entry, so nothing changes if it is there). */
export async function registerDevice(uid) {
  const key = `fjordbank-device-${uid}`;
  let device = JSON.parse(localStorage.getItem(key) || "null");
  if (!device) {
    device = { deviceId: randomId("web"), token: randomId("web-token-") };
    localStorage.setItem(key, JSON.stringify(device));
  }
  const entry = { token: device.token, platform: "web" };
  await setDoc(
    doc(db, `users/${uid}/settings/notifications`),
    { devices: { [device.deviceId]: entry }, changed: device.deviceId },
    { merge: true },
  );
  return device;
}

/** Take this browser off `uid`'s devices (at sign-out, as the phone app does): a browser
 * used once (a private window) would otherwise keep one of the ten places for good, and the
 * eleventh could not sign in. Its id stays in localStorage for its next sign-in. */
export async function unregisterDevice(uid) {
  const id = thisDeviceId(uid);
  if (id) await removeDevice(uid, id);
}

/** This browser's device id for `uid` (null: it never registered for that customer). */
export function thisDeviceId(uid) {
  return JSON.parse(localStorage.getItem(`fjordbank-device-${uid}`) || "null")?.deviceId ?? null;
}

/** Take one device off `uid`'s push devices (one device per write, firestore.rules): a
 * browser closed without signing out, or a phone no longer used, frees its place. */
export async function removeDevice(uid, deviceId) {
  await setDoc(
    doc(db, `users/${uid}/settings/notifications`),
    { devices: { [deviceId]: deleteField() }, changed: deviceId },
    { merge: true },
  );
}

// Which run of `receive` a poll belongs to: a poll answered after receiving stopped (a
// sign-out) or moved to another token (another customer) is dropped, not shown to the next.
let generation = 0;

async function poll(token, gen, first = false) {
  try {
    const url = `${config.fcmSink}/sink/messages?token=${encodeURIComponent(token)}&since=${since}`;
    const fresh = await (await fetch(url)).json();
    if (gen !== generation) return;
    if (fresh.length) {
      since = Math.max(since, ...fresh.map((m) => m.seq));
      messages = [...messages, ...fresh];
      for (const fn of listeners) fn(messages, first ? [] : fresh); // what was there before is not news
    }
  } catch {
    // the sink is away (stack restarting): try again on the next tick
  }
}

/** Start receiving the pushes for `token` (every 2 s). */
export function receive(token) {
  stopReceiving();
  const gen = generation;
  poll(token, gen, true);
  timer = setInterval(() => poll(token, gen), 2000);
}

/** Stop receiving, and forget what was received: the next customer signed in on this
 * browser saw the one before's pushes (amounts, card digits, merchants) under
 * Notifications when their own device was not registered (found in review, 2026-12-07). */
export function stopReceiving() {
  if (timer) clearInterval(timer);
  timer = null;
  generation += 1;
  messages = [];
  since = 0;
}

/** fn(allMessages, newMessages) on every arrival; returns an unsubscribe function. */
export function onPush(fn) {
  listeners.add(fn);
  fn(messages, []);
  return () => listeners.delete(fn);
}
