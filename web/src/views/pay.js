// Paying: the app writes users/{uid}/paymentRequests/{requestId} (contract v1; the id is
// the idempotency key), confirmed by this device's signature, and watches the document's
// status move requested -> approved -> ... -> completed. Invoice scanning turns a giro's
// OCR line into a draft (invoices_scan) that is paid the same way. A payment can also
// repeat weekly or monthly: a standing order (standing_orders_create, confirmed the same way).
import { doc, getDoc, onSnapshot, setDoc } from "firebase/firestore";
import { confirmPayment, confirmStandingOrder, deviceKey } from "../device.js";
import { action, field, fill, h, toast } from "../dom.js";
import { call, config, db, listenFailed } from "../firebase.js";
import { formatNOK, parseNOK, toInput } from "../money.js";
import { formatAccount, isValidAccount, normalizeAccount, osloToday, sampleGiroLine } from "../norway.js";
import { openAccounts, session } from "../session.js";
import { waitingNote } from "./standing.js";

// The most one payment may be (the contract's ceiling: fjordbank/domain/payments.py,
// MAX_AMOUNT_MINOR; firestore.rules refuses more, in words the customer cannot act on).
const MAX_PAYMENT = 100_000_000;

function newId(prefix = "web-") {
  const bytes = new Uint8Array(12);
  crypto.getRandomValues(bytes);
  return prefix + [...bytes].map((b) => b.toString(16).padStart(2, "0")).join("");
}

/** Validate the form into a contract v1 body (without `sca`); throws with the field's problem. */
function paymentBody({ from, to, payeeName, amount, message, kid, dueDate, frequency, endDate }) {
  const toAccount = normalizeAccount(to);
  if (!isValidAccount(toAccount)) throw new Error("The account number is not valid (11 digits, check digit).");
  if (toAccount === from) throw new Error("Choose another account to pay to.");
  const ore = parseNOK(amount);
  if (!ore) throw new Error("Write the amount in kroner, like 150 or 1 234,50.");
  if (ore > MAX_PAYMENT) throw new Error(`One payment is at most ${formatNOK(MAX_PAYMENT)}.`);
  if (message && kid) throw new Error("A payment has a message or a KID, not both.");
  if (kid && !/^[0-9]{1,24}[0-9-]$/.test(kid)) throw new Error("The KID is 2-25 digits.");
  if (message && message.length > 140) throw new Error("The message is at most 140 characters.");
  if (payeeName && payeeName.length > 70) throw new Error("The payee's name is at most 70 characters.");
  if (dueDate && dueDate < osloToday()) throw new Error("The due date is in the past.");
  if (frequency && endDate && endDate < (dueDate || osloToday())) throw new Error("The last date is before the first.");
  const body = { v: 1, fromAccount: from, toAccount, amount: ore, currency: "NOK" };
  if (message) body.message = message;
  if (kid) body.kid = kid;
  if (payeeName) body.payeeName = payeeName;
  if (frequency) return { ...body, frequency, startDate: dueDate || osloToday(), endDate: endDate || null };
  if (dueDate && dueDate > osloToday()) body.dueDate = dueDate; // later than today: scheduled
  return body;
}

// One reviewed body is one request: its id is made once, and the device's signature of it is
// kept, so pressing Confirm again after a lost answer sends the same request (the bank answers
// it as it stands) instead of a second payment or a second standing order (found in review).
// A signature is made again for nothing: ECDSA signs each time differently, and the bank
// would take the same id with another signature for another request.

/** Sign on this device (once per ``sent``) and create the request document; returns its id. */
async function sendPayment(body, sent) {
  const uid = session.user.uid;
  const requestId = sent.id;
  if (!("sca" in sent)) {
    sent.sca = await confirmPayment(uid, {
      requestId,
      amount: body.amount,
      currency: "NOK",
      toAccount: body.toAccount,
    });
  }
  // a merge: the same request sent again changes nothing the bank wrote on it (the rules allow that)
  await setDoc(doc(db, `users/${uid}/paymentRequests/${requestId}`), sent.sca ? { ...body, sca: sent.sca } : body, {
    merge: true,
  });
  return requestId;
}

/** A standing order, confirmed on this device (once per ``sent``) with its accounts, how often, from when and until when. */
async function sendStandingOrder(plan, sent) {
  const orderId = sent.id;
  const { v, currency, ...terms } = plan;
  if (!("sca" in sent)) {
    sent.sca = await confirmStandingOrder(session.user.uid, {
      orderId,
      amount: plan.amount,
      currency,
      fromAccount: plan.fromAccount,
      toAccount: plan.toAccount,
      frequency: plan.frequency,
      startDate: plan.startDate,
      endDate: plan.endDate, // null for none: signed as "", and the field left out below
    });
  }
  const order = { orderId, ...terms };
  if (!order.endDate) delete order.endDate;
  await call("standing_orders_create", sent.sca ? { ...order, sca: sent.sca } : order);
  return orderId;
}

const EVERY = { weekly: "every week", monthly: "every month" };

function reviewCard(body, onBack) {
  const error = h("p", { class: "error", role: "alert", testid: "pay-error" });
  const repeating = Boolean(body.frequency);
  const confirmButton = h(
    "button",
    { class: "primary", testid: "pay-confirm" },
    repeating ? "Confirm on this device and save" : "Confirm on this device and pay",
  );
  const back = h("button", { type: "button" }, "Change");
  back.addEventListener("click", onBack);
  const sent = { id: newId(repeating ? "so-web-" : "web-") }; // this reviewed body's request, sent again as is
  confirmButton.addEventListener(
    "click",
    action(confirmButton, error, async () => {
      back.disabled = true; // no second body while this one is on its way
      try {
        if (repeating) {
          await sendStandingOrder(body, sent);
          toast("Standing order saved", "ok");
          location.hash = "#/standing-orders";
        } else {
          location.hash = `#/payment/${await sendPayment(body, sent)}`;
        }
      } finally {
        back.disabled = false;
      }
    }),
  );
  const from = session.accounts.find((a) => a.id === body.fromAccount);
  const noKeyWarning = h("p", { class: "warn", hidden: true, testid: "no-device-key" }, [
    "This browser holds no device key of yours: a payment to a new payee or above 5 000 kr will be refused. ",
    h("a", { href: "#/devices" }, "Add this browser under Devices"),
    ".",
  ]);
  const uid = session.user.uid;
  deviceKey(uid) // a key kept here, and still enrolled (not removed under Devices)
    .then(async (key) => key && (await getDoc(doc(db, `users/${uid}/scaKeys/${key.keyId}`))).exists())
    .then((enrolled) => (noKeyWarning.hidden = enrolled))
    .catch(() => (noKeyWarning.hidden = true));
  return h(
    "div",
    { class: "card narrow", testid: "pay-review" },
    h("h2", {}, repeating ? "Confirm the standing order" : "Confirm the payment"),
    h(
      "dl",
      {},
      h("dt", {}, "Amount"),
      h("dd", { class: "balance", testid: "review-amount" }, formatNOK(body.amount)),
      h("dt", {}, "To"),
      h("dd", { class: "mono" }, `${body.payeeName ? `${body.payeeName} ` : ""}${formatAccount(body.toAccount)}`),
      h("dt", {}, "From"),
      h("dd", {}, `${from?.name || ""} ${formatAccount(body.fromAccount)}`),
      body.kid ? [h("dt", {}, "KID"), h("dd", { class: "mono" }, body.kid)] : null,
      body.message ? [h("dt", {}, "Message"), h("dd", {}, body.message)] : null,
      h("dt", {}, repeating ? "First date" : "Date"),
      h("dd", {}, (repeating ? body.startDate : body.dueDate) || "today"),
      repeating
        ? [
            h("dt", {}, "Repeats"),
            h("dd", {}, `${EVERY[body.frequency]}${body.endDate ? ` until ${body.endDate}` : ""}`),
          ]
        : null,
    ),
    h("p", { class: "muted" }, "This device signs exactly this amount and payee (strong customer authentication)."),
    noKeyWarning,
    h("div", { class: "buttons" }, confirmButton, back),
    error,
  );
}

/** The payment form; `draft` pre-fills it (a scanned invoice, or ?to=&amount= in the URL). */
function paymentForm(draft, onReview) {
  const accounts = openAccounts();
  const from = h(
    "select",
    { name: "from", testid: "pay-from" },
    ...accounts.map((a) => h("option", { value: a.id }, `${a.name} · ${formatNOK(a.available)}`)),
  );
  const to = h("input", {
    name: "to",
    inputmode: "numeric",
    testid: "pay-to",
    value: draft.to ? formatAccount(draft.to) : "",
  });
  const amount = h("input", {
    name: "amount",
    inputmode: "decimal",
    testid: "pay-amount",
    value: draft.amount ? toInput(draft.amount) : "",
  });
  const message = h("input", { name: "message", maxlength: "140", testid: "pay-message", value: draft.message || "" });
  const payee = h("input", { name: "payeeName", maxlength: "70", testid: "pay-payee", value: draft.payeeName || "" });
  const kid = h("input", { name: "kid", inputmode: "numeric", testid: "pay-kid", value: draft.kid || "" });
  const due = h("input", {
    type: "date",
    name: "dueDate",
    testid: "pay-due",
    min: osloToday(),
    value: draft.dueDate || osloToday(),
  });
  const repeat = h(
    "select",
    { name: "frequency", testid: "pay-repeat" },
    h("option", { value: "" }, "Once"),
    h("option", { value: "weekly", selected: draft.frequency === "weekly" }, "Every week"),
    h("option", { value: "monthly", selected: draft.frequency === "monthly" }, "Every month"),
  );
  const until = h("input", {
    type: "date",
    name: "endDate",
    testid: "pay-until",
    min: osloToday(),
    value: draft.endDate || "",
  });
  const error = h("p", { class: "error", role: "alert", testid: "pay-error" });
  const submit = h("button", { type: "submit", class: "primary", testid: "pay-review-button" }, "Review");
  const form = h(
    "form",
    { class: "card narrow", testid: "pay-form" },
    h("h2", {}, draft.kid ? "Pay the invoice" : "Pay"),
    field("From", from),
    field("To account", to, "11 digits, e.g. 1503.00.00037"),
    field("Payee's name (optional)", payee),
    field("Amount (kr)", amount),
    h("div", { class: "row" }, field("KID", kid), field("or a message", message)),
    h(
      "div",
      { class: "row" },
      field("Date", due, "A later date schedules it."),
      field("Repeat", repeat),
      field("Until (optional)", until),
    ),
    h("div", { class: "buttons" }, submit),
    error,
  );
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    try {
      error.textContent = "";
      onReview(
        paymentBody({
          from: from.value,
          to: to.value,
          payeeName: payee.value.trim(),
          amount: amount.value,
          message: message.value.trim(),
          kid: kid.value.trim(),
          dueDate: due.value,
          frequency: repeat.value,
          endDate: repeat.value ? until.value : "",
        }),
      );
    } catch (err) {
      error.textContent = err.message;
    }
  });
  if (!accounts.length) error.textContent = "You have no open account to pay from.";
  return form;
}

export function payView({ query }) {
  const el = h("section", { testid: "pay-screen" });
  const draft = {
    to: query.get("to") || "",
    amount: query.get("amount") ? Number(query.get("amount")) : null,
    kid: query.get("kid") || "",
    message: query.get("message") || "",
    dueDate: query.get("due") || "",
  };
  const showForm = () => fill(el, paymentForm(draft, showReview));
  const showReview = (body) => {
    Object.assign(draft, {
      to: body.toAccount,
      payeeName: body.payeeName || "",
      amount: body.amount,
      kid: body.kid || "",
      message: body.message || "",
      dueDate: body.dueDate || body.startDate || "",
      frequency: body.frequency || "",
      endDate: body.endDate || "",
    });
    fill(el, reviewCard(body, showForm));
  };
  showForm();
  return { el };
}

// ---- the request's life, live -------------------------------------------------------------
const STEPS = [
  ["requested", "Received by the bank"],
  ["scheduled", "Scheduled for its date"],
  ["approved", "Approved (limits and checks)"],
  ["reserved", "Money reserved"],
  ["submitted", "Sent to the other bank"],
  ["settled", "Settled by the other bank"],
  ["returned", "Returned by the other bank"],
  ["completed", "Completed"],
  ["failed", "Failed"],
  ["rejected", "Refused"],
  ["cancelled", "Cancelled"],
];
const OPTIONAL = new Set([
  "scheduled",
  "reserved",
  "submitted",
  "settled",
  "returned",
  "failed",
  "rejected",
  "cancelled",
]);
const FINAL = new Set(["completed", "failed", "rejected", "cancelled"]);

// A request id as the bank takes one (fjordbank.domain.payments.REQUEST_ID_PATTERN). The
// route's id is checked before it names a document: `#/payment/x%2Fy%2Fz` listened on a path
// no rule matches, the refusal read as an ended session signed the customer out, and an id
// of two segments threw with the screen before it left up, its listeners stopped (found in
// review, 2026-12-07).
const REQUEST_ID = /^[A-Za-z0-9_-]{8,64}$/;

export function paymentView({ params }) {
  const requestId = params[0];
  if (!REQUEST_ID.test(requestId || "")) {
    const none = h("div", { class: "card narrow", testid: "payment" }, h("p", { class: "error" }, "No such payment."));
    return { el: h("section", { testid: "payment-screen" }, none), stop: () => {} };
  }
  const card = h("div", { class: "card narrow", testid: "payment" }, h("p", { class: "muted" }, "Sending …"));
  let celebrated = false;
  const stop = onSnapshot(
    doc(db, `users/${session.user.uid}/paymentRequests/${requestId}`),
    (snap) => {
      if (!snap.exists()) return;
      const r = snap.data();
      const timeline = r.timeline || {};
      const status = r.status || "sending";
      // "received": the bank has it and sends it on by itself (publish_pending: the edge
      // could not hand it on yet); shown as received, its note not as an error
      const received = status === "received";
      const done = (step) => step === status || step in timeline || (received && step === "requested");
      const steps = STEPS.filter(([step]) => !OPTIONAL.has(step) || done(step));
      fill(
        card,
        h("h2", {}, FINAL.has(status) ? (status === "completed" ? "Paid" : "Not paid") : "Paying …"),
        h("div", { class: "balance" }, formatNOK(r.amount)),
        h(
          "p",
          { class: "muted" },
          `to ${formatAccount(r.toAccount)}`,
          r.kid ? ` · KID ${r.kid}` : "",
          r.message ? ` · ${r.message}` : "",
        ),
        h("p", {}, "Status: ", h("strong", { testid: "payment-status", "data-status": status }, status)),
        r.reason
          ? h(
              "p",
              { class: received ? "muted" : "error", testid: "payment-reason" },
              `${r.reason.message} (${r.reason.code})`,
            )
          : null,
        status === "scheduled" ? waitingNote(r.waiting) : null,
        h(
          "ol",
          { class: "steps" },
          ...steps.map(([step, text]) =>
            h(
              "li",
              { class: done(step) ? "done" : FINAL.has(status) ? "skipped" : "todo", testid: `step-${step}` },
              text,
              timeline[step]?.toDate ? h("small", {}, timeline[step].toDate().toLocaleTimeString("nb-NO")) : null,
            ),
          ),
        ),
        h(
          "div",
          { class: "buttons" },
          status === "scheduled" ? cancelScheduled(requestId) : null,
          h("a", { class: "button", href: "#/accounts" }, "Accounts"),
          h("a", { class: "button", href: "#/pay" }, "New payment"),
        ),
      );
      if (status === "completed" && !celebrated) toast("Payment completed", "ok");
      celebrated ||= status === "completed";
    },
    listenFailed,
  );
  return { el: h("section", { testid: "payment-screen" }, card), stop };
}

function cancelScheduled(requestId) {
  const button = h("button", { class: "danger", testid: "cancel-scheduled" }, "Cancel this payment");
  const error = h("span", { class: "error" });
  button.addEventListener(
    "click",
    action(button, error, async () => {
      await call("payments_cancel_scheduled", { requestId });
    }),
  );
  return h("span", {}, button, error);
}

// ---- invoices -------------------------------------------------------------------------------
export function invoiceView() {
  const line = h("textarea", { rows: "3", name: "ocrLine", testid: "ocr-line", spellcheck: "false", class: "mono" });
  const error = h("p", { class: "error", testid: "scan-error" });
  const read = h("button", { type: "submit", class: "primary", testid: "scan" }, "Read the giro");
  const result = h("div", {});
  const sample = h("button", { type: "button", testid: "sample-giro" }, "Use a sample giro");
  sample.addEventListener("click", () => {
    line.value = sampleGiroLine();
  });
  const form = h(
    "form",
    { class: "card narrow" },
    h("h2", {}, "Scan an invoice"),
    h("p", { class: "muted" }, "Paste the OCR line from the bottom of a giro: KID # kroner øre check > account #"),
    field("OCR line", line),
    config.local ? h("p", { class: "local" }, sample, " (local stack: pays the simulated other bank)") : null,
    h("div", { class: "buttons" }, read),
    error,
  );
  form.addEventListener(
    "submit",
    action(read, error, async () => {
      fill(result);
      const draft = await call("invoices_scan", { ocrLine: line.value });
      fill(result, draftCard(draft));
    }),
  );
  return { el: h("section", { testid: "invoice-screen" }, form, result) };
}

function draftCard(draft) {
  // a giro may leave the amount to the payer (amount null): the form then asks for it
  const query = new URLSearchParams({ to: draft.toAccount });
  if (draft.amount != null) query.set("amount", String(draft.amount));
  if (draft.kid) query.set("kid", draft.kid);
  if (draft.dueDate && draft.dueDate >= osloToday()) query.set("due", draft.dueDate);
  return h(
    "div",
    { class: "card narrow", testid: "draft" },
    h("h3", {}, "Is this right?"),
    h(
      "dl",
      {},
      h("dt", {}, "To account"),
      h("dd", { class: "mono", testid: "draft-account" }, formatAccount(draft.toAccount)),
      h("dt", {}, "Amount"),
      h(
        "dd",
        { class: "balance", testid: "draft-amount" },
        draft.amount != null ? formatNOK(draft.amount) : "Not printed: type it in on the next screen",
      ),
      h("dt", {}, "KID"),
      h("dd", { class: "mono", testid: "draft-kid" }, draft.kid || "–"),
      draft.dueDate ? [h("dt", {}, "Due"), h("dd", {}, draft.dueDate)] : null,
    ),
    draft.corrections?.length
      ? h(
          "div",
          { class: "warn", testid: "draft-corrections" },
          h("strong", {}, "Read differently from the text — check these: "),
          h("ul", {}, ...draft.corrections.map((c) => h("li", {}, c))),
        )
      : null,
    paidBefore(draft.paidBefore),
    h(
      "div",
      { class: "buttons" },
      h("a", { class: "button primary", href: `#/pay?${query}`, testid: "pay-invoice" }, "Pay this invoice"),
    ),
  );
}

// The same invoice (account and KID) paid before, or waiting to be paid: a warning, not a
// refusal (a payee may give a customer one KID for every monthly bill).
const EARLIER_STATE = { scheduled: "to be paid", completed: "paid" };

function paidBefore(earlier) {
  if (!earlier?.length) return null;
  return h(
    "div",
    { class: "warn", testid: "draft-paid-before" },
    h("strong", {}, "You have paid to this account with this KID before — check it is not the same invoice: "),
    h(
      "ul",
      {},
      ...earlier.map((e) => {
        const when = e.status === "scheduled" && e.dueDate ? e.dueDate : e.at ? osloDay(e.at) : "";
        return h("li", {}, `${formatNOK(e.amount)} ${EARLIER_STATE[e.status] || "on its way"} ${when}`.trim());
      }),
    ),
  );
}

function osloDay(iso) {
  return new Intl.DateTimeFormat("sv-SE", { timeZone: "Europe/Oslo" }).format(new Date(iso));
}
