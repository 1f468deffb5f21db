// Who is signed in, their customer record and their accounts, shared by every screen.
// The accounts are one live query (onSnapshot): balances change on screen as the
// ledger posts.
import { collection, doc, getDoc, onSnapshot, query, where } from "firebase/firestore";
import { db, listenFailed } from "./firebase.js";

/** customer: undefined while loading, null before onboarding, else customers/{uid}. */
export const session = { user: null, customer: undefined, accounts: [], device: null };

const listeners = new Set();
let unsubscribers = [];

const millis = (ts) => ts?.toMillis?.() ?? 0;

function changed() {
  for (const fn of listeners) fn(session);
}

/** fn(session) now and on every change; returns an unsubscribe function. */
export function onSession(fn) {
  listeners.add(fn);
  fn(session);
  return () => listeners.delete(fn);
}

export function signedIn(user, device) {
  signedOut(false);
  Object.assign(session, { user, device, customer: undefined, accounts: [] });
  unsubscribers = [
    onSnapshot(
      doc(db, "customers", user.uid),
      (snap) => {
        session.customer = snap.exists() ? snap.data() : null;
        changed();
      },
      listenFailed,
    ),
    onSnapshot(
      query(collection(db, "accounts"), where("ownerUid", "==", user.uid)),
      (snap) => {
        session.accounts = snap.docs
          .map((d) => ({ id: d.id, ...d.data() }))
          .sort((a, b) => millis(a.createdAt) - millis(b.createdAt) || a.id.localeCompare(b.id));
        changed();
      },
      listenFailed,
    ),
  ];
  changed();
}

export function signedOut(notify = true) {
  for (const stop of unsubscribers) stop();
  unsubscribers = [];
  Object.assign(session, { user: null, customer: undefined, accounts: [], device: null });
  if (notify) changed();
}

/** Read the customer record now (after a callable changed it), not waiting for the listener. */
export async function refreshCustomer() {
  const snap = await getDoc(doc(db, "customers", session.user.uid));
  if (snap.exists() && session.user) {
    session.customer = snap.data();
    changed();
  }
}

/** The customer's open accounts. */
export function openAccounts() {
  return session.accounts.filter((a) => a.status === "open");
}
