// Accounts with live balances, and one account's transaction feed (both onSnapshot).
import { collection, limit, onSnapshot, orderBy, query } from "firebase/firestore";
import { CATEGORIES, colour, label } from "../categories.js";
import { action, field, fill, h, toast } from "../dom.js";
import { call, config, db } from "../firebase.js";
import { formatNOK } from "../money.js";
import { formatAccount } from "../norway.js";
import { onSession, openAccounts, session } from "../session.js";

/** Local stack only: the dev server pays a demo salary into the account (a real payment). */
async function demoSalary(accountId) {
  const token = await session.user.getIdToken();
  const resp = await fetch("/dev/salary", {
    method: "POST",
    headers: { "Content-Type": "application/json", Authorization: `Bearer ${token}` },
    body: JSON.stringify({ accountId }),
  });
  const body = await resp.json().catch(() => ({}));
  if (!resp.ok) throw new Error(body.error || `HTTP ${resp.status}`);
  return body;
}

function accountCard(account, error) {
  const salary = h("button", { class: "small", testid: "demo-salary" }, "Receive a demo salary");
  salary.addEventListener(
    "click",
    action(salary, error, async () => {
      toast("Your employer is paying …");
      const result = await demoSalary(account.id);
      toast(`Salary ${result.status}: ${formatNOK(result.amount)}`, result.status === "completed" ? "ok" : "warn");
    }),
  );
  return h(
    "article",
    { class: "card account", testid: "account", "data-account": account.id },
    h(
      "a",
      { href: `#/account/${account.id}`, class: "plain" },
      h("div", { class: "account-name" }, account.name || "Account"),
      h("div", { class: "muted mono" }, formatAccount(account.id)),
      h("div", { class: "balance", testid: "available" }, formatNOK(account.available)),
      h(
        "div",
        { class: "muted" },
        `Balance ${formatNOK(account.balance)}`,
        account.held ? ` · reserved ${formatNOK(account.held)}` : "",
        account.status !== "open" ? ` · ${account.status}` : "",
      ),
    ),
    config.local && account.status === "open" ? h("div", { class: "local" }, salary, " (local stack)") : null,
    account.status === "closed" ? payoutButton(account, error) : null,
  );
}

/** A closed account given money since (a shop's refund): moved to the first open account. */
function payoutButton(account, error) {
  const to = openAccounts()[0];
  if (!to) return h("p", { class: "muted" }, "Open an account to move this money to.");
  const move = h(
    "button",
    { class: "small primary", testid: "payout" },
    `Move it to ${to.name || formatAccount(to.id)}`,
  );
  move.addEventListener(
    "click",
    action(move, error, async () => {
      const result = await call("accounts_payout", { accountId: account.id, toAccountId: to.id });
      toast(`${formatNOK(result.amount)} moved to ${formatAccount(result.toAccountId)}`, "ok");
    }),
  );
  return h("div", { class: "buttons" }, move);
}

export function accountsView() {
  const list = h("div", { class: "grid" });
  const total = h("p", { class: "muted", testid: "total" });
  const error = h("p", { class: "error" });
  const open = h("button", { testid: "open-savings" }, "Open a savings account");
  // the opening's idempotency key, kept until it is answered: a click again after an error
  // (the answer may have been lost) gets the account it opened, not a second one
  let opening = null;
  open.addEventListener(
    "click",
    action(open, error, async () => {
      opening ??= `open-${crypto.randomUUID()}`;
      const result = await call("accounts_open", { kind: "savings", requestId: opening });
      opening = null;
      toast(`Account ${formatAccount(result.accountId)} opened`, "ok");
    }),
  );
  const stop = onSession((s) => {
    // a closed account shows only while it holds money (a shop's refund after closing)
    const accounts = s.accounts.filter((a) => a.status !== "closed" || a.balance > 0);
    fill(
      list,
      ...(accounts.length
        ? accounts.map((a) => accountCard(a, error))
        : [h("p", { class: "muted" }, "Loading accounts …")]),
    );
    total.textContent = `Available in all: ${formatNOK(accounts.reduce((sum, a) => sum + (a.available || 0), 0))}`;
  });
  const el = h(
    "section",
    { testid: "accounts-screen" },
    h("h2", {}, `Hi ${(session.customer?.name || "").split(" ")[0]}`),
    total,
    list,
    h("div", { class: "buttons" }, open, h("a", { href: "#/pay", class: "button primary" }, "Pay")),
    error,
  );
  return { el, stop };
}

/** When a feed entry was booked (a Firestore timestamp; an ISO string is read too). */
function entryTime(e) {
  const t = e.bookedAt ?? e.createdAt ?? e.updatedAt;
  if (t?.toDate) return t.toDate();
  return typeof t === "string" ? new Date(t) : null;
}

const STATUS_TEXT = { pending: "reserved", posted: "", cancelled: "cancelled" };

function feedEntry(accountId, e) {
  const title =
    e.merchantName ||
    `${e.direction === "in" ? "From" : "To"} ${e.counterpartyName || formatAccount(e.counterpartyAccount)}`;
  const when = entryTime(e);
  const detail = [
    e.kind === "card_refund" ? "refund" : null,
    e.kind === "payout" ? (e.direction === "in" ? "from a closed account" : "paid out") : null,
    e.message || (e.kid ? `KID ${e.kid}` : null),
    e.cardLast4 ? `card •••• ${e.cardLast4}` : null,
    when ? when.toLocaleString("nb-NO", { dateStyle: "short", timeStyle: "short" }) : null,
  ].filter(Boolean);
  const chip = h(
    "span",
    { class: "chip", style: `background:${colour(e.category)}`, testid: "category" },
    label(e.category),
  );
  return h(
    "li",
    { class: `entry ${e.status}`, testid: "feed-entry", "data-status": e.status, "data-id": e.id },
    h("div", { class: "entry-main" }, h("div", {}, title), h("small", { class: "muted" }, detail.join(" · "))),
    recategorise(accountId, e, chip),
    h(
      "div",
      { class: `amount ${e.amount > 0 ? "in" : ""}` },
      formatNOK(e.amount, { signed: true }),
      STATUS_TEXT[e.status] ? h("small", { class: "status" }, STATUS_TEXT[e.status]) : null,
    ),
  );
}

/** The category chip; a click offers the other categories (transactions_recategorise). */
function recategorise(accountId, entry, chip) {
  const box = h("div", { class: "category" }, chip);
  if (entry.direction === "in") return box;
  chip.classList.add("clickable");
  chip.title = "Change the category";
  chip.addEventListener("click", () => {
    const select = h(
      "select",
      { testid: "recategorise", "aria-label": "Category for this merchant" },
      ...Object.keys(CATEGORIES)
        .filter((c) => c !== "income")
        .map((c) => h("option", { value: c, selected: c === entry.category }, label(c))),
    );
    select.addEventListener("change", async () => {
      try {
        await call("transactions_recategorise", { accountId, transactionId: entry.id, category: select.value });
        toast(`${label(select.value)} from now on for this merchant`, "ok");
      } catch (err) {
        toast(err.message, "error");
        fill(box, chip);
      }
    });
    fill(box, select);
    select.focus();
  });
  return box;
}

// An account number as the bank issues them (11 digits). A link with another id ("a%2Fb")
// made a Firestore path the SDK throws on while the screen was being built: the screen
// before stayed up with its listener stopped (found in review, 2026-12-07).
const ACCOUNT_ID = /^\d{11}$/;

export function accountView({ params }) {
  const id = params[0];
  if (!ACCOUNT_ID.test(id || "")) {
    const none = h("div", { class: "card" }, h("p", { class: "error" }, "No such account."));
    return { el: h("section", { testid: "account-screen" }, none), stop: () => {} };
  }
  const header = h("div", { class: "card" });
  const feed = h("ul", { class: "feed", testid: "feed" }, h("li", { class: "muted" }, "Loading …"));
  const error = h("p", { class: "error" });
  const name = h("input", { name: "name", maxlength: "40", testid: "rename-input" });
  const rename = h("button", { type: "submit" }, "Rename");
  const close = h("button", { class: "danger", testid: "close-account" }, "Close account");
  const renameForm = h("form", { class: "row" }, field("Name", name), rename);
  renameForm.addEventListener(
    "submit",
    action(rename, error, async () => {
      await call("accounts_rename", { accountId: id, name: name.value.trim() });
      toast("Renamed", "ok");
    }),
  );
  close.addEventListener(
    "click",
    action(close, error, async () => {
      if (!confirm("Close this account? It must be empty.")) return;
      await call("accounts_close", { accountId: id });
      toast("Account closed", "ok");
      location.hash = "#/accounts";
    }),
  );
  let named = false;
  const stopSession = onSession((s) => {
    const a = s.accounts.find((x) => x.id === id);
    if (!a) return;
    if (!named) {
      name.value = a.name || "";
      named = true;
    }
    fill(
      header,
      h("div", { class: "account-name" }, a.name),
      h("div", { class: "muted mono" }, formatAccount(a.id)),
      h("div", { class: "balance", testid: "available" }, formatNOK(a.available)),
      h("div", { class: "muted" }, `Balance ${formatNOK(a.balance)} · reserved ${formatNOK(a.held || 0)}`),
    );
  });
  // Newest first, by when each entry was booked (it keeps its place as its status changes).
  const stopFeed = onSnapshot(
    query(collection(db, `accounts/${id}/transactions`), orderBy("bookedAt", "desc"), limit(100)),
    (snap) => {
      const entries = snap.docs.map((d) => ({ id: d.id, ...d.data() }));
      fill(
        feed,
        ...(entries.length
          ? entries.map((e) => feedEntry(id, e))
          : [h("li", { class: "muted" }, "No transactions yet.")]),
      );
    },
    // Not listenFailed: a link to an account that is not the customer's is refused the
    // same way as an ended session, and must not sign them out (the customer's own
    // document's listener does that for an ended session).
    (err) =>
      fill(
        feed,
        h("li", { class: "error" }, err.code === "permission-denied" ? "No such account of yours." : err.message),
      ),
  );
  const el = h(
    "section",
    { testid: "account-screen" },
    h("p", {}, h("a", { href: "#/accounts" }, "← Accounts")),
    header,
    h("h3", {}, "Transactions"),
    feed,
    h("details", {}, h("summary", {}, "Account settings"), renameForm, close),
    error,
  );
  return {
    el,
    stop() {
      stopSession();
      stopFeed();
    },
  };
}
