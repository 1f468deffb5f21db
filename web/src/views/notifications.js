// Notifications this device received, and which kinds the customer wants.
import { doc, onSnapshot, setDoc } from "firebase/firestore";
import { fill, h, toast } from "../dom.js";
import { db, listenFailed } from "../firebase.js";
import { onPush, removeDevice, thisDeviceId } from "../push.js";
import { session } from "../session.js";

const KINDS = [
  ["payments", "Payments I make"],
  ["incoming", "Money I receive"],
  ["card", "Card purchases"],
  ["onboarding", "My application"],
  ["marketing", "News and offers"],
];
const DEFAULTS = { payments: true, incoming: true, card: true, onboarding: true, marketing: false };

function settingsForm(uid) {
  const path = `users/${uid}/settings/notifications`;
  const boxes = Object.fromEntries(
    KINDS.map(([kind]) => [kind, h("input", { type: "checkbox", testid: `pref-${kind}` })]),
  );
  for (const [kind, box] of Object.entries(boxes)) {
    box.addEventListener("change", async () => {
      try {
        // a merge of this one preference: the same document holds the devices (push.js)
        await setDoc(doc(db, path), { [kind]: box.checked }, { merge: true });
      } catch (err) {
        toast(err.message, "error");
      }
    });
  }
  const devices = h("ul", { class: "feed", testid: "push-devices" });
  const stop = onSnapshot(
    doc(db, path),
    (snap) => {
      const current = { ...DEFAULTS, ...(snap.data() || {}) };
      for (const [kind, box] of Object.entries(boxes)) box.checked = current[kind];
      showDevices(devices, uid, snap.data()?.devices || {});
    },
    listenFailed,
  );
  const el = h(
    "details",
    { class: "card" },
    h("summary", {}, "What to be told about"),
    ...KINDS.map(([kind, text]) => h("label", { class: "check" }, boxes[kind], text)),
    // the bank's security notices (a device added or removed) have no switch (firestore.rules)
    h("small", { class: "muted", testid: "security-always" }, "A device added or removed is always told."),
    h("h3", {}, "Devices that get them"),
    devices,
    h("small", { class: "muted" }, "At most ten. Remove one you no longer use to make room for another."),
  );
  return { el, stop };
}

const PLATFORMS = { web: "Web browser", android: "Android phone", ios: "iPhone" };

/** The customer's push devices, this browser first; each other one can be removed. */
function showDevices(list, uid, devices) {
  const mine = thisDeviceId(uid);
  const ids = Object.keys(devices).sort((a, b) => (b === mine) - (a === mine) || a.localeCompare(b));
  fill(
    list,
    ...(ids.length
      ? ids.map((id) => {
          const label = PLATFORMS[devices[id]?.platform] || "Device";
          const remove =
            id === mine
              ? h("small", { class: "muted" }, "this browser")
              : h(
                  "button",
                  {
                    class: "danger small",
                    testid: "remove-push-device",
                    async onClick(event) {
                      const button = event.currentTarget; // null once the handler awaits
                      button.disabled = true;
                      try {
                        await removeDevice(uid, id);
                        toast(`${label} removed: it gets no more notifications`, "ok");
                      } catch (err) {
                        button.disabled = false;
                        toast(err.message, "error");
                      }
                    },
                  },
                  "Remove",
                );
          return h(
            "li",
            { class: "entry", testid: "push-device", "data-device": id },
            h("div", { class: "entry-main" }, h("strong", {}, label), h("small", { class: "muted" }, id)),
            remove,
          );
        })
      : [h("li", { class: "muted" }, "None: notifications go nowhere.")]),
  );
}

export function notificationsView() {
  const list = h("ul", { class: "feed", testid: "notifications" });
  const stopPush = onPush((all) => {
    fill(
      list,
      ...(all.length
        ? [...all].reverse().map((m) =>
            h(
              "li",
              { class: "entry", testid: "notification" },
              h(
                "div",
                { class: "entry-main" },
                h("strong", {}, m.message.notification?.title || "(no title)"),
                h("div", {}, m.message.notification?.body || ""),
                // the merchant of a card push: in its data, not on the lock screen (SECURITY.md)
                ...(m.message.data?.merchantName
                  ? [h("div", { class: "muted", testid: "notification-merchant" }, m.message.data.merchantName)]
                  : []),
                h("small", { class: "muted" }, new Date(m.received_at).toLocaleString("nb-NO")),
              ),
            ),
          )
        : [h("li", { class: "muted" }, "Nothing yet.")]),
    );
  });
  const settings = settingsForm(session.user.uid);
  const el = h("section", { testid: "notifications-screen" }, h("h2", {}, "Notifications"), list, settings.el);
  return {
    el,
    stop() {
      stopPush();
      settings.stop();
    },
  };
}
