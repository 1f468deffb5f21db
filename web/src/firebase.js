// The Firebase JS SDK, connected to the local emulator suite. The app uses only what a
// mobile client may use: Auth, Firestore (reads, and the writes the rules allow) and
// callables (with an App Check token).
import { initializeApp } from "firebase/app";
import { CustomProvider, initializeAppCheck } from "firebase/app-check";
import { connectAuthEmulator, getAuth, signOut } from "firebase/auth";
import { connectFirestoreEmulator, getFirestore } from "firebase/firestore";
import { connectFunctionsEmulator, getFunctions, httpsCallable } from "firebase/functions";

/** What the local server says about the stack (/config.json): project, emulator ports. */
export let config = null;
export let auth = null;
export let db = null;
let functions = null;

/**
 * App Check's attestation provider. A real app uses Play Integrity / App Attest /
 * reCAPTCHA Enterprise; this local build asks its own dev server, which mints the
 * emulator's debug tokens (the secret never reaches the browser).
 */
function localAttestation() {
  return new CustomProvider({
    getToken: async () => {
      const resp = await fetch("/dev/app-check-token", { method: "POST" });
      if (!resp.ok) throw new Error(`App Check token: HTTP ${resp.status}`);
      const { token, expireTimeMillis } = await resp.json();
      return { token, expireTimeMillis };
    },
  });
}

export async function start() {
  config = await (await fetch("/config.json")).json();
  const app = initializeApp({
    apiKey: config.apiKey,
    projectId: config.projectId,
    appId: config.appId,
    authDomain: `${config.projectId}.firebaseapp.com`,
  });
  initializeAppCheck(app, { provider: localAttestation(), isTokenAutoRefreshEnabled: true });
  const host = config.emulatorHost || location.hostname;
  const ports = config.emulators;
  auth = getAuth(app);
  connectAuthEmulator(auth, `http://${host}:${ports.auth}`, { disableWarnings: true });
  db = getFirestore(app);
  connectFirestoreEmulator(db, host, ports.firestore);
  functions = getFunctions(app, config.region);
  connectFunctionsEmulator(functions, host, ports.functions);
}

/**
 * A listener's error: permission-denied on the customer's own documents means the bank ended
 * this session (a device removed with sign-out, a reset; fjordbank/service_layer/sessions.py),
 * so back to the sign-in screen. Other errors are the view's to show.
 */
export function listenFailed(err) {
  if (err?.code === "permission-denied" && auth?.currentUser) signOut(auth);
}

/** Whether the session now signed in began at or after `validAfter` (Unix seconds). */
async function signedInSince(validAfter) {
  if (typeof validAfter !== "number" || !auth?.currentUser) return false;
  const token = await auth.currentUser.getIdTokenResult();
  return Number(token.claims.auth_time ?? 0) >= validAfter;
}

/** A callable's answer, or a thrown Error with `.reason` (the backend's reason code). */
// The Functions SDK's codes that say the bank's answer did not come (a crash, the network, a
// timeout): a request may have been made all the same.
const NO_ANSWER = new Set(["internal", "unavailable", "deadline-exceeded"]);

/** A callable's error in words the customer can act on: the bank's message without the
 * SDK's " [400]" status suffix, and no bare "internal" when no answer came (found in review). */
export function callMessage(err) {
  const code = String(err?.code || "").replace(/^functions\//, "");
  if (NO_ANSWER.has(code) && !err?.details?.reason) {
    return "No answer from the bank. Check whether it went through before you try again.";
  }
  return String(err?.message || err).replace(/\s*\[\d+\]$/, "");
}

export async function call(name, data) {
  try {
    const result = await httpsCallable(functions, name)(data);
    return result.data;
  } catch (err) {
    const reason = err?.details?.reason;
    // the bank ended this session (a device removed with sign-out, a reset): back to sign-in,
    // unless this is a late answer to a call made before the customer signed in again
    if (reason === "session_ended" && !(await signedInSince(err?.details?.validAfter))) await signOut(auth);
    const e = new Error(callMessage(err));
    e.reason = reason;
    e.field = err?.details?.field;
    e.code = err?.code;
    throw e;
  }
}
