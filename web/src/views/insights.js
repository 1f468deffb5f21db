// Subscriptions found in the feed, and "my economy": money in and out per month, with a
// chart drawn by hand in SVG. Both are read models the backend keeps under users/{uid}.
import { collection, onSnapshot } from "firebase/firestore";
import { colour, label } from "../categories.js";
import { action, fill, h, svg, toast } from "../dom.js";
import { call, db, listenFailed } from "../firebase.js";
import { formatNOK } from "../money.js";
import { osloToday } from "../norway.js";
import { session } from "../session.js";

// how the list says a subscription's interval (fjordbank.domain.subscriptions)
const EVERY = { weekly: "every week", "four-weekly": "every four weeks", monthly: "every month" };

function live(path, render, box) {
  return onSnapshot(
    collection(db, path),
    (snap) => render(snap.docs.map((d) => ({ id: d.id, ...d.data() }))),
    (err) => {
      fill(box, h("p", { class: "error" }, `${err.message}`));
      listenFailed(err);
    },
  );
}

// ---- subscriptions --------------------------------------------------------------------------
function subscriptionRow(sub) {
  const error = h("small", { class: "error" });
  const dismiss = h("button", { class: "small", testid: "dismiss" }, "Not a subscription");
  dismiss.addEventListener(
    "click",
    action(dismiss, error, async () => {
      await call("subscriptions_dismiss", { merchantKey: sub.id });
      toast(`${sub.merchantName} hidden`, "ok");
    }),
  );
  return h(
    "li",
    { class: "entry", testid: "subscription", "data-merchant": sub.id },
    h(
      "div",
      { class: "entry-main" },
      h("strong", {}, sub.merchantName || sub.id),
      h(
        "small",
        { class: "muted" },
        `${formatNOK(sub.amount)} ${EVERY[sub.interval] ?? "every month"}`,
        sub.nextExpected ? ` · next ${sub.nextExpected}` : "",
        sub.category ? ` · ${label(sub.category)}` : "",
      ),
    ),
    h("div", { class: "amount" }, formatNOK(-(sub.monthlyCost ?? 0)), h("small", { class: "status" }, "a month")),
    sub.status === "active" ? dismiss : null,
    error,
  );
}

export function subscriptionsView() {
  const box = h("div", {}, h("p", { class: "muted" }, "Loading …"));
  const stop = live(
    `users/${session.user.uid}/subscriptions`,
    (subs) => {
      // ended: no charge came by the last day one could still continue it (lapsesAfter,
      // fjordbank.domain.subscriptions), so it is no longer counted in the month's total
      const today = osloToday();
      const listed = subs.filter((s) => s.status !== "dismissed");
      const ended = listed.filter((s) => s.lapsesAfter && s.lapsesAfter < today);
      const active = listed
        .filter((s) => !ended.includes(s))
        .sort((a, b) => (b.monthlyCost ?? 0) - (a.monthlyCost ?? 0));
      const total = active.reduce((sum, s) => sum + (s.monthlyCost ?? 0), 0);
      fill(
        box,
        h("p", { class: "balance", testid: "subscriptions-total" }, `${formatNOK(total)} a month`),
        active.length
          ? h("ul", { class: "feed", testid: "subscriptions" }, ...active.map(subscriptionRow))
          : h(
              "p",
              { class: "muted" },
              "No subscriptions found yet: they show up after a merchant has charged you regularly.",
            ),
        ended.length
          ? h(
              "details",
              { testid: "ended-subscriptions" },
              h("summary", { class: "muted" }, `Ended (${ended.length}): no charge since`),
              h(
                "ul",
                { class: "feed" },
                ...ended.map((s) =>
                  h(
                    "li",
                    { class: "entry muted", testid: "ended-subscription", "data-merchant": s.id },
                    `${s.merchantName || s.id} · last charged ${s.lastDate}`,
                  ),
                ),
              ),
            )
          : null,
      );
    },
    box,
  );
  return { el: h("section", { testid: "subscriptions-screen" }, h("h2", {}, "Subscriptions"), box), stop };
}

// ---- my economy -----------------------------------------------------------------------------
const MONTHS = ["jan", "feb", "mar", "apr", "mai", "jun", "jul", "aug", "sep", "okt", "nov", "des"];
const monthLabel = (ym) => `${MONTHS[Number(ym.slice(5, 7)) - 1]} ${ym.slice(0, 4)}`;

/** Whole kroner, for the labels on the bars ("25 000"). */
const kr = (ore = 0) => formatNOK(ore + 50 - ((ore + 50) % 100)).replace(/,00\u00a0kr$/, "");

/** Income and spending per month as pairs of bars (the last six months). */
function monthChart(months, selected, onSelect) {
  const width = 560;
  const height = 220;
  const pad = { top: 16, bottom: 28, left: 8, right: 8 };
  const top = Math.max(1, ...months.flatMap((m) => [m.income || 0, m.spent || 0]));
  const slot = (width - pad.left - pad.right) / Math.max(months.length, 1);
  const barW = Math.min(28, slot / 3);
  const y = (ore) => pad.top + (height - pad.top - pad.bottom) * (1 - ore / top);
  const bars = months.flatMap((m, i) => {
    const x = pad.left + slot * i + slot / 2;
    const group = svg(
      "g",
      { class: m.id === selected ? "month selected" : "month", testid: `chart-${m.id}`, onClick: () => onSelect(m.id) },
      svg("rect", {
        x: pad.left + slot * i,
        y: 0,
        width: slot,
        height,
        fill: m.id === selected ? "#eef3f8" : "transparent",
      }),
      svg("rect", {
        x: x - barW - 1,
        y: y(m.income || 0),
        width: barW,
        height: y(0) - y(m.income || 0),
        fill: "#2e7d32",
        rx: 2,
      }),
      svg("rect", {
        x: x + 1,
        y: y(m.spent || 0),
        width: barW,
        height: y(0) - y(m.spent || 0),
        fill: "#c62828",
        rx: 2,
      }),
      svg("text", { x, y: height - 8, "text-anchor": "middle", "font-size": 12 }, monthLabel(m.id)),
      svg("text", { x: x - barW / 2, y: y(m.income || 0) - 4, "text-anchor": "middle", "font-size": 10 }, kr(m.income)),
      svg("text", { x: x + barW / 2, y: y(m.spent || 0) - 4, "text-anchor": "middle", "font-size": 10 }, kr(m.spent)),
      svg("title", {}, `${monthLabel(m.id)}: in ${formatNOK(m.income || 0)}, out ${formatNOK(m.spent || 0)}`),
    );
    return [group];
  });
  return svg(
    "svg",
    {
      viewBox: `0 0 ${width} ${height}`,
      class: "chart",
      role: "img",
      "aria-label": "Income and spending per month",
      testid: "economy-chart",
    },
    svg("line", { x1: 0, x2: width, y1: y(0), y2: y(0), stroke: "#bbb" }),
    ...bars,
  );
}

/** One month's spending by category, as horizontal bars. */
function categoryBars(month) {
  const rows = Object.entries(month.spending || {})
    .filter(([, ore]) => ore > 0)
    .sort((a, b) => b[1] - a[1]);
  const top = Math.max(1, ...rows.map(([, ore]) => ore));
  return h(
    "ul",
    { class: "bars", testid: "economy-categories" },
    ...rows.map(([category, ore]) =>
      h(
        "li",
        {},
        h("span", {}, label(category)),
        h("span", { class: "bar", style: `width:${Math.max(2, (100 * ore) / top)}%;background:${colour(category)}` }),
        h("span", { class: "amount" }, formatNOK(ore)),
      ),
    ),
  );
}

export function economyView() {
  const box = h("div", {}, h("p", { class: "muted" }, "Loading …"));
  let selected = null;
  let months = [];
  const render = () => {
    if (!months.length) {
      fill(box, h("p", { class: "muted" }, "Nothing to show yet: it fills in as money comes and goes."));
      return;
    }
    const shown = months.slice(-6);
    if (!shown.some((m) => m.id === selected)) selected = shown.at(-1).id;
    const m = months.find((x) => x.id === selected);
    fill(
      box,
      h(
        "div",
        { class: "card" },
        monthChart(shown, selected, (id) => ((selected = id), render())),
        h("p", { class: "legend" }, h("span", { class: "in" }, "■ in"), " ", h("span", { class: "out" }, "■ out")),
      ),
      h(
        "div",
        { class: "card", testid: "economy-month" },
        h("h3", {}, monthLabel(m.id)),
        h(
          "dl",
          { class: "row" },
          h("div", {}, h("dt", {}, "In"), h("dd", { testid: "economy-income" }, formatNOK(m.income || 0))),
          h("div", {}, h("dt", {}, "Out"), h("dd", { testid: "economy-spent" }, formatNOK(m.spent || 0))),
          h("div", {}, h("dt", {}, "Saved"), h("dd", { testid: "economy-savings" }, formatNOK(m.savings || 0))),
        ),
        categoryBars(m),
      ),
    );
  };
  const stop = live(
    `users/${session.user.uid}/economy`,
    (docs) => {
      months = docs.map((d) => ({ ...d, id: d.month || d.id })).sort((a, b) => a.id.localeCompare(b.id));
      render();
    },
    box,
  );
  return { el: h("section", { testid: "economy-screen" }, h("h2", {}, "My economy"), box), stop };
}
