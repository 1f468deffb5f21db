// Devices: the customer's keys for strong customer authentication. A device of theirs
// approves another (the new one shows a code, the enrolled one signs it); a lost one is
// removed for good; with none left, the bank reopens the enrolment after proving who the
// customer is, and this browser enrols itself within 30 minutes.
import { signOut } from "firebase/auth";
import { collection, onSnapshot } from "firebase/firestore";
import { action, field, fill, h, toast } from "../dom.js";
import { approveDevice, deviceKey, enrolmentCode, ensureDeviceKey, fingerprint, newDeviceKey } from "../device.js";
import { auth, call, db, listenFailed } from "../firebase.js";
import { session } from "../session.js";

let onRemovedHere = async () => {};

function keyRow(key, mine) {
  const error = h("span", { class: "error" });
  const remove = h("button", { class: "danger small", testid: "revoke-key" }, "Remove");
  remove.addEventListener(
    "click",
    action(remove, error, async () => {
      const what = mine ? "this browser" : "this device";
      if (!confirm(`Remove ${what} for good? It can no longer confirm payments.`)) return;
      // a lost or stolen device: its session ends at once, and so does every other one,
      // this one too, so it cannot look at the accounts or remove the others
      const lost =
        !mine && confirm("Was it lost or stolen? Then you are signed out everywhere, and sign in again here.");
      const answer = await call("sca_revoke_key", { keyId: key.id, signOutEverywhere: lost });
      if (mine) await onRemovedHere(); // its id never comes back: this browser needs a new key
      toast("The device is removed", "ok");
      if (answer?.signedOut) await signOut(auth); // this session ended too: sign in again
    }),
  );
  const added = key.createdAt?.toDate ? key.createdAt.toDate().toLocaleDateString("nb-NO") : "";
  return h(
    "li",
    { class: "entry", testid: "device-key", "data-key": key.id },
    h(
      "div",
      { class: "entry-main" },
      h("strong", {}, mine ? "This browser" : "Another device"),
      h(
        "small",
        { class: "muted mono" },
        ` ${key.id}`,
        added ? ` · added ${added}` : "",
        key.approvedBy ? ` · approved by ${key.approvedBy}` : "",
      ),
    ),
    remove,
    error,
  );
}

function approveForm(uid) {
  const code = h("textarea", { rows: "3", name: "code", testid: "device-code-input", class: "mono" });
  const error = h("p", { class: "error", testid: "approve-error" });
  const approve = h("button", { type: "submit", class: "primary", testid: "approve-device" }, "Approve");
  const form = h(
    "form",
    { class: "card narrow" },
    h("h3", {}, "Add another device"),
    h("p", { class: "muted" }, "Open Devices on the new device, copy its code and paste it here."),
    field("The new device's code", code),
    h("div", { class: "buttons" }, approve),
    error,
  );
  form.addEventListener(
    "submit",
    action(approve, error, async () => {
      await call("sca_add_device", await approveDevice(uid, code.value));
      code.value = "";
      toast("The new device is added", "ok");
    }),
  );
  return form;
}

function enrolThisBrowser(uid, shown) {
  const code = h("code", { class: "mono device-code", testid: "device-code" });
  const keyId = h("strong", { class: "mono", testid: "device-key-id" });
  const printed = h("strong", { class: "mono", testid: "device-fingerprint" });
  const error = h("p", { class: "error", testid: "enrol-error" });
  const show = async (key) => {
    const fp = await fingerprint(key.publicKey); // the three change together
    code.textContent = enrolmentCode(key);
    keyId.textContent = key.keyId;
    printed.textContent = fp;
  };
  ensureDeviceKey(uid).then(show);
  onRemovedHere = async () => show(await newDeviceKey(uid));
  const fresh = h("button", { type: "button", testid: "new-code" }, "Make a new code");
  fresh.addEventListener(
    "click",
    action(fresh, error, async () => show(await newDeviceKey(uid))),
  );
  const enrol = h("button", { type: "button", testid: "enrol-browser" }, "Enrol this browser");
  enrol.addEventListener(
    "click",
    action(enrol, error, async () => {
      const key = await ensureDeviceKey(uid);
      await call("sca_register_key", { keyId: key.keyId, publicKey: key.publicKey });
      toast("This browser is enrolled", "ok");
    }),
  );
  return h(
    "div",
    { class: "card narrow", testid: "enrol-this-browser", hidden: shown },
    h("h3", {}, "Use this browser to confirm payments"),
    h("p", {}, "On a device of yours that is enrolled, open Devices and paste this code:"),
    h("p", {}, code),
    h("p", { class: "muted" }, [
      "Lost every device? Show the bank this browser's key ",
      keyId,
      " and fingerprint ",
      printed,
      "; once it has checked who you are, enrol this browser here within 30 minutes.",
    ]),
    h("p", { class: "muted" }, "Told this key was removed (device_key_revoked)? Make a new code."),
    h("div", { class: "buttons" }, enrol, fresh),
    error,
  );
}

export function devicesView() {
  const uid = session.user.uid;
  const list = h("ul", { class: "feed", testid: "device-keys" });
  const approve = approveForm(uid);
  const enrol = enrolThisBrowser(uid, true);
  const stop = onSnapshot(
    collection(db, `users/${uid}/scaKeys`),
    async (snap) => {
      const mine = (await deviceKey(uid))?.keyId;
      const keys = snap.docs.map((d) => ({ id: d.id, ...d.data() }));
      const enrolled = keys.some((k) => k.id === mine);
      fill(list, ...(keys.length ? keys.map((k) => keyRow(k, k.id === mine)) : [h("li", { class: "muted" }, "None.")]));
      approve.hidden = !enrolled;
      enrol.hidden = enrolled;
    },
    listenFailed,
  );
  return {
    el: h("section", { testid: "devices-screen" }, h("h2", {}, "Devices"), list, approve, enrol),
    stop,
  };
}
