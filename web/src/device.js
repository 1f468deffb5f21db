// This browser as the customer's device: its key for strong customer authentication.
// An ECDSA P-256 key made with WebCrypto, the private half non-extractable and kept in
// IndexedDB (a phone keeps it in its keystore). The bank gets the public key at onboarding,
// or later from another device of the customer's that approves it by signing
// "fjordbank-sca-enrol-v1|uid|keyId|sha256(public key DER) in hex"; every payment is
// confirmed by signing exactly what the customer approved:
// "fjordbank-sca-v1|requestId|amount|currency|toAccount", a standing order with its
// from-account, how often, from when and until when
// ("fjordbank-sca-order-v2|...|fromAccount|toAccount|frequency|startDate|endDate") and its
// larger amount from what it was ("fjordbank-sca-order-change-v1|orderId|fromAmount|..."), a
// card unfrozen ("fjordbank-sca-card-unfreeze-v1|cardId") and its limits raised
// ("fjordbank-sca-card-limits-v1|cardId|<limits now>|<new limits>") (fjordbank/domain/sca.py).
// WebCrypto's ECDSA signature is r||s (IEEE P1363), the format the backend verifies.

const DB_NAME = "fjordbank-device";
const STORE = "scaKeys";

function idb(mode, work) {
  return new Promise((resolve, reject) => {
    const open = indexedDB.open(DB_NAME, 1);
    open.onupgradeneeded = () => open.result.createObjectStore(STORE);
    open.onerror = () => reject(open.error);
    open.onsuccess = () => {
      const tx = open.result.transaction(STORE, mode);
      const req = work(tx.objectStore(STORE));
      tx.oncomplete = () => {
        open.result.close();
        resolve(req.result);
      };
      tx.onerror = () => reject(tx.error);
    };
  });
}

function b64(buffer) {
  return btoa(String.fromCharCode(...new Uint8Array(buffer)));
}

/** The device key of user `uid` on this browser: {keyId, privateKey, publicKey} or undefined. */
export function deviceKey(uid) {
  return idb("readonly", (store) => store.get(uid));
}

/** Make (once) and keep this browser's key for `uid`; returns {keyId, publicKey (base64 SPKI)}. */
export async function ensureDeviceKey(uid) {
  const existing = await deviceKey(uid);
  if (existing) return existing;
  return newDeviceKey(uid);
}

/** A new key for `uid` on this browser, in place of the one it kept (revoked, or never enrolled). */
export async function newDeviceKey(uid) {
  const pair = await crypto.subtle.generateKey({ name: "ECDSA", namedCurve: "P-256" }, false, ["sign"]);
  const id = new Uint8Array(9);
  crypto.getRandomValues(id);
  const entry = {
    keyId: `web-${[...id].map((b) => b.toString(16).padStart(2, "0")).join("")}`,
    privateKey: pair.privateKey, // non-extractable: stored as a CryptoKey, never as bytes
    publicKey: b64(await crypto.subtle.exportKey("spki", pair.publicKey)),
  };
  await idb("readwrite", (store) => store.put(entry, uid));
  return entry;
}

async function signText(key, text) {
  const signature = await crypto.subtle.sign(
    { name: "ECDSA", hash: "SHA-256" },
    key.privateKey,
    new TextEncoder().encode(text),
  );
  return b64(signature);
}

async function sha256Hex(bytes) {
  const digest = await crypto.subtle.digest("SHA-256", bytes);
  return [...new Uint8Array(digest)].map((b) => b.toString(16).padStart(2, "0")).join("");
}

function der(publicKey) {
  return Uint8Array.from(atob(publicKey), (c) => c.charCodeAt(0));
}

/** What a device shows of its key for a person to compare (the bank's operator, when it
 * reopens the enrolment): the first 64 bits of the key's SHA-256, "3F2A-09C1-77DE-B410". */
export async function fingerprint(publicKey) {
  const hex = (await sha256Hex(der(publicKey))).slice(0, 16).toUpperCase();
  return hex.match(/.{4}/g).join("-");
}

/** What a new device shows to be added: its key id and public key, as one code to copy. */
export function enrolmentCode({ keyId, publicKey }) {
  return btoa(JSON.stringify({ keyId, publicKey }));
}

/** The sca_add_device call's data for the device whose `code` is pasted here: the new key
 * and this browser's approval of it (a signature over the customer, its id and the key). */
export async function approveDevice(uid, code) {
  const key = await deviceKey(uid);
  if (!key) throw new Error("This browser holds no device key of yours to approve with.");
  let other;
  try {
    other = JSON.parse(atob(code.trim()));
  } catch {
    throw new Error("That is not a device code: copy it again from the new device.");
  }
  if (typeof other?.keyId !== "string" || typeof other?.publicKey !== "string") {
    throw new Error("That is not a device code: copy it again from the new device.");
  }
  const hex = await sha256Hex(der(other.publicKey));
  const signature = await signText(key, `fjordbank-sca-enrol-v1|${uid}|${other.keyId}|${hex}`);
  return { keyId: other.keyId, publicKey: other.publicKey, approval: { keyId: key.keyId, signature } };
}

/** The payment request's `sca` field: this device's signature over what the customer approved. */
export async function confirmPayment(uid, { requestId, amount, currency, toAccount }) {
  return confirm(uid, `fjordbank-sca-v1|${requestId}|${amount}|${currency}|${toAccount}`);
}

/** A new standing order's `sca`: its payment from which account, how often, from when and
 * until when ("" for no end date) (fjordbank/domain/sca.py order_challenge). The bank refuses
 * the first version, which left out the end date and the from-account: a confirmation of an
 * order "until June" made one with no end (found in review, 2026-12-06). */
export async function confirmStandingOrder(
  uid,
  { orderId, amount, currency, fromAccount, toAccount, frequency, startDate, endDate },
) {
  const terms = `${fromAccount}|${toAccount}|${frequency}|${startDate}|${endDate || ""}`;
  return confirm(uid, `fjordbank-sca-order-v2|${orderId}|${amount}|${currency}|${terms}`);
}

/** A standing order's larger amount, from what it is now (order_change_challenge). */
export async function confirmOrderChange(uid, { orderId, fromAmount, amount, currency, toAccount }) {
  return confirm(uid, `fjordbank-sca-order-change-v1|${orderId}|${fromAmount}|${amount}|${currency}|${toAccount}`);
}

/** Unfreezing a card (fjordbank/domain/sca.py card_unfreeze_challenge). */
export async function confirmCardUnfreeze(uid, cardId) {
  return confirm(uid, `fjordbank-sca-card-unfreeze-v1|${cardId}`);
}

/** A card's higher limits, from what they are to what, each daily|online|abroad in øre
 * (card_limits_challenge). */
export async function confirmCardLimits(uid, cardId, fromLimits, limits) {
  const kinds = ["daily", "online", "abroad"];
  const values = [...kinds.map((k) => fromLimits[k]), ...kinds.map((k) => limits[k])].join("|");
  return confirm(uid, `fjordbank-sca-card-limits-v1|${cardId}|${values}`);
}

async function confirm(uid, challenge) {
  const key = await deviceKey(uid);
  if (!key) return null;
  return { keyId: key.keyId, signature: await signText(key, challenge) };
}
