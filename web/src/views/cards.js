// Cards: issue a virtual debit card, freeze and unfreeze it, set its limits. The card
// document carries the last four digits only; the number lives in the bank's vault.
import { collection, onSnapshot, query, where } from "firebase/firestore";
import { confirmCardLimits, confirmCardUnfreeze } from "../device.js";
import { action, field, fill, h, toast } from "../dom.js";
import { call, db, listenFailed } from "../firebase.js";
import { formatNOK, parseNOK, toInput } from "../money.js";
import { formatAccount } from "../norway.js";
import { openAccounts, session } from "../session.js";

const LIMITS = [
  ["daily", "Per day"],
  ["online", "Online per day"],
  ["abroad", "Abroad per day"],
];

function limitsForm(card) {
  const inputs = Object.fromEntries(
    LIMITS.map(([kind]) => [
      kind,
      h("input", {
        name: kind,
        inputmode: "decimal",
        testid: `limit-${kind}`,
        value: toInput(card.limits?.[kind] ?? 0),
      }),
    ]),
  );
  const error = h("p", { class: "error" });
  const save = h("button", { type: "submit", testid: "save-limits" }, "Save limits");
  const form = h(
    "form",
    { class: "limits" },
    ...LIMITS.map(([kind, text]) => field(text, inputs[kind])),
    h("div", { class: "buttons" }, save),
    error,
  );
  form.addEventListener(
    "submit",
    action(save, error, async () => {
      const limits = {};
      for (const [kind, text] of LIMITS) {
        const ore = parseNOK(inputs[kind].value);
        if (ore === null) throw new Error(`${text}: write an amount in kroner`);
        limits[kind] = ore;
      }
      const now = card.limits ?? {};
      const raised = LIMITS.some(([kind]) => limits[kind] > (now[kind] ?? 0));
      // a raise is confirmed on this device (from the limits as they are), a lowering is not
      const sca = raised ? await confirmCardLimits(session.user.uid, card.id, now, limits) : null;
      await call("cards_limits", { cardId: card.id, limits, ...(sca ? { sca } : {}) });
      toast("Limits saved", "ok");
    }),
  );
  return form;
}

function cardTile(card) {
  const error = h("p", { class: "error" });
  const usable = card.status === "active" || card.status === "frozen";
  const freeze = h(
    "button",
    { testid: "freeze", class: card.status === "frozen" ? "primary" : "" },
    card.status === "frozen" ? "Unfreeze" : "Freeze",
  );
  freeze.addEventListener(
    "click",
    action(freeze, error, async () => {
      const unfreeze = card.status === "frozen";
      // unfreezing is confirmed on this device; freezing (a lost card) never waits for it
      const sca = unfreeze ? await confirmCardUnfreeze(session.user.uid, card.id) : null;
      await call("cards_freeze", { cardId: card.id, frozen: !unfreeze, ...(sca ? { sca } : {}) });
    }),
  );
  const replace = h("button", { class: "danger", testid: "replace" }, "Lost or stolen: replace");
  replace.addEventListener(
    "click",
    action(replace, error, async () => {
      if (!confirm("Block this card for good and order a new one?")) return;
      await call("cards_replace", { cardId: card.id, reason: "lost" });
      toast("The card is blocked; a new one is on its way", "ok");
    }),
  );
  const expiry = card.expMonth ? `${String(card.expMonth).padStart(2, "0")}/${String(card.expYear).slice(-2)}` : "";
  return h(
    "article",
    { class: `card bankcard ${card.status}`, testid: "bankcard", "data-status": card.status, "data-card": card.id },
    h(
      "div",
      { class: "plastic" },
      h("div", { class: "brand" }, "Fjordbank · debit"),
      h("div", { class: "pan mono" }, card.last4 ? `•••• •••• •••• ${card.last4}` : "issuing …"),
      h(
        "div",
        { class: "row" },
        h("span", {}, expiry),
        h("span", { class: "chip", testid: "card-status" }, card.status),
      ),
    ),
    h("p", { class: "muted" }, `Account ${formatAccount(card.accountId)}`),
    usable
      ? [
          h("div", { class: "buttons" }, freeze, replace),
          h(
            "details",
            {},
            h(
              "summary",
              { testid: "limits" },
              `Limits: ${formatNOK(card.limits?.daily)} a day · online ${formatNOK(card.limits?.online)} · abroad ${formatNOK(card.limits?.abroad)}`,
            ),
            limitsForm(card),
          ),
        ]
      : null,
    error,
  );
}

export function cardsView() {
  const list = h("div", { class: "grid" }, h("p", { class: "muted" }, "Loading …"));
  const error = h("p", { class: "error" });
  const account = h(
    "select",
    { testid: "card-account" },
    ...openAccounts().map((a) => h("option", { value: a.id }, `${a.name} ${formatAccount(a.id)}`)),
  );
  const issue = h("button", { class: "primary", testid: "issue-card" }, "Order a virtual card");
  // the order's idempotency key, kept until it is answered: a click again after an error
  // (the answer may have been lost) gets the card it ordered, not a second one
  let ordering = null;
  issue.addEventListener(
    "click",
    action(issue, error, async () => {
      ordering ??= { accountId: account.value, requestId: `card-${crypto.randomUUID()}` };
      if (ordering.accountId !== account.value)
        ordering = { accountId: account.value, requestId: `card-${crypto.randomUUID()}` };
      await call("cards_issue", ordering);
      ordering = null;
      toast("Your card is being made …", "ok");
    }),
  );
  const stop = onSnapshot(
    query(collection(db, "cards"), where("ownerUid", "==", session.user.uid)),
    (snap) => {
      const cards = snap.docs
        .map((d) => ({ id: d.id, ...d.data() }))
        .filter((c) => c.status !== "blocked")
        .sort((a, b) => (b.createdAt?.toMillis?.() ?? 0) - (a.createdAt?.toMillis?.() ?? 0));
      fill(list, ...(cards.length ? cards.map(cardTile) : [h("p", { class: "muted" }, "No cards yet.")]));
    },
    (err) => {
      fill(list, h("p", { class: "error" }, err.message));
      listenFailed(err);
    },
  );
  const el = h(
    "section",
    { testid: "cards-screen" },
    h("h2", {}, "Cards"),
    list,
    h("div", { class: "card narrow" }, field("New card on", account), h("div", { class: "buttons" }, issue), error),
  );
  return { el, stop };
}
