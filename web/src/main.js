// Fjordbank's reference web app: every screen of the mobile app's main flows, through the
// Firebase JS SDK against the local emulators. Hash routes: #/accounts, #/account/ID,
// #/pay, #/payment/ID, #/invoice, #/cards, #/standing-orders, #/subscriptions, #/economy,
// #/notifications, #/devices.
import { onAuthStateChanged, signOut } from "firebase/auth";
import { fill, h, toast } from "./dom.js";
import { auth, config, start } from "./firebase.js";
import { onPush, receive, registerDevice, stopReceiving, unregisterDevice } from "./push.js";
import { onSession, session, signedIn, signedOut } from "./session.js";
import { accountView, accountsView } from "./views/accounts.js";
import { cardsView } from "./views/cards.js";
import { devicesView } from "./views/devices.js";
import { economyView, subscriptionsView } from "./views/insights.js";
import { notificationsView } from "./views/notifications.js";
import { onboardingView } from "./views/onboarding.js";
import { invoiceView, paymentView, payView } from "./views/pay.js";
import { standingOrdersView } from "./views/standing.js";
import { welcomeView } from "./views/welcome.js";

const ROUTES = {
  accounts: accountsView,
  account: accountView,
  pay: payView,
  payment: paymentView,
  invoice: invoiceView,
  cards: cardsView,
  "standing-orders": standingOrdersView,
  notifications: notificationsView,
  subscriptions: subscriptionsView,
  economy: economyView,
  devices: devicesView,
};
const NAV = [
  ["accounts", "Accounts"],
  ["pay", "Pay"],
  ["invoice", "Scan invoice"],
  ["cards", "Cards"],
  ["standing-orders", "Standing orders"],
  ["subscriptions", "Subscriptions"],
  ["economy", "My economy"],
  ["notifications", "Notifications"],
  ["devices", "Devices"],
];

const main = () => document.getElementById("main");
let current = { key: null, stop: null };
let unread = 0;

function parseHash() {
  const [path, search = ""] = location.hash.replace(/^#\/?/, "").split("?");
  const [name, ...params] = path.split("/").filter(Boolean);
  return { name: name || "accounts", params: params.map(decodeURIComponent), query: new URLSearchParams(search) };
}

/** Which screen the session allows: welcome, loading, onboarding, or the route asked for. */
function screenFor(route) {
  if (!session.user) return "welcome";
  if (session.customer === undefined) return "loading";
  if (session.customer === null || session.customer.status !== "approved") return "onboarding";
  return ROUTES[route.name] ? route.name : "accounts";
}

function show() {
  const route = parseHash();
  const screen = screenFor(route);
  const key = `${screen}|${location.hash}`;
  if (key === current.key) return;
  // the new screen is built before the old one stops: one that fails to build (a link the
  // views did not expect) leaves the old one working, not frozen with its listeners gone
  let view;
  if (screen === "welcome") view = welcomeView();
  else if (screen === "loading") view = { el: h("p", { class: "muted" }, "Loading …") };
  else if (screen === "onboarding") view = onboardingView();
  else view = ROUTES[screen](route);
  current.stop?.();
  current = { key, stop: view.stop };
  if (screen === "notifications") unread = 0;
  renderNav(screen);
  fill(main(), view.el);
  window.scrollTo(0, 0);
}

function renderNav(screen) {
  const nav = document.getElementById("nav");
  const customer = session.customer?.status === "approved";
  fill(
    nav,
    ...(customer
      ? NAV.map(([name, text]) =>
          h(
            "a",
            { href: `#/${name}`, class: name === screen ? "active" : "", testid: `nav-${name}` },
            text,
            name === "notifications" && unread ? h("span", { class: "badge", testid: "unread" }, String(unread)) : null,
          ),
        )
      : []),
  );
  const who = document.getElementById("who");
  fill(
    who,
    ...(session.user
      ? [
          h("span", { class: "muted", testid: "signed-in-as" }, session.user.email),
          h("button", { class: "small", testid: "sign-out", onClick: signOutHere }, "Sign out"),
        ]
      : []),
  );
}

// How long a sign-in or sign-out waits for this browser's push registration: the write
// waits for the server, and offline it never came, so a sign-out did nothing and a reload
// showed the sign-in form to a signed-in customer (found in review). Past it the write goes
// on by itself (Firestore sends it when the connection is back).
const DEVICE_WRITE_WAIT_MS = 3000;

function waited(promise) {
  return Promise.race([promise, new Promise((resolve) => setTimeout(() => resolve(null), DEVICE_WRITE_WAIT_MS))]);
}

/** Sign out, taking this browser off the customer's push devices first (best effort: a
 * sign-out is never held up by it for more than DEVICE_WRITE_WAIT_MS). */
async function signOutHere() {
  const uid = session.user?.uid;
  if (uid) await waited(unregisterDevice(uid).catch(() => {}));
  await signOut(auth);
}

function noNotifications(err) {
  // the reason as one sentence: Firestore's own messages end with a full stop
  const reason = String(err?.message || err).replace(/[.\s]+$/, "");
  toast(
    `This browser gets no notifications: ${reason}. Remove a device you no longer use under Notifications.`,
    "warn",
  );
}

async function boot() {
  await start();
  if (config.local) document.body.classList.add("local-stack");
  onAuthStateChanged(auth, async (user) => {
    stopReceiving();
    unread = 0; // (the pushes counted were the customer's before)
    if (!user) {
      signedOut();
      return;
    }
    // Register this browser for pushes first: the onboarding result is one. One refused
    // (the customer has ten devices registered) signs in all the same, without pushes here;
    // one not answered in time (offline) signs in, and pushes start when it is.
    const registering = registerDevice(user.uid);
    let device = null;
    let told = false;
    try {
      device = await waited(registering);
    } catch (err) {
      told = true;
      noNotifications(err);
    }
    // signed out meanwhile (another tab): the wait's end must not show this user again
    // over the signed-out screen (found in review, 2026-12-07)
    if (auth.currentUser?.uid !== user.uid) return;
    signedIn(user, device);
    if (device) receive(device.token);
    else {
      registering
        .then((late) => late && session.user?.uid === user.uid && receive(late.token))
        .catch((err) => told || noNotifications(err));
    }
  });
  onPush((_all, fresh) => {
    if (!fresh.length) return;
    for (const m of fresh) toast(`${m.message.notification?.title}: ${m.message.notification?.body}`, "push");
    if (parseHash().name !== "notifications") unread += fresh.length;
    renderNav(current.key?.split("|")[0]);
  });
  onSession(show);
  window.addEventListener("hashchange", show);
}

boot().catch((err) => {
  fill(main(), h("p", { class: "error" }, `The app could not start: ${err.message}`));
});
