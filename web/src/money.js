// Money is integers in øre, never floats. Shown as Norwegian kroner.

const GROUP = "\u00a0"; // no-break space between thousands

/** 123456 -> "1 234,56 kr"; -500 -> "−5,00 kr" (with `signed`, +/− always). */
export function formatNOK(ore, { signed = false } = {}) {
  if (!Number.isSafeInteger(ore)) return "–";
  const abs = Math.abs(ore);
  const rest = abs % 100;
  const kroner = (abs - rest) / 100; // exact: abs - rest is a multiple of 100
  const grouped = String(kroner).replace(/\B(?=(\d{3})+(?!\d))/g, GROUP);
  const sign = ore < 0 ? "−" : signed && ore > 0 ? "+" : "";
  return `${sign}${grouped},${String(rest).padStart(2, "0")}\u00a0kr`;
}

/** What a person types ("1 234,50", "150", "99.9 kr") -> øre, or null if it is not an amount.
 * Spaces only between groups of three digits, as the bank's own parser (Money.parse_nok):
 * every space was taken out first, and "500 50" (kroner and øre, as a giro prints them)
 * read as 50 050 kr, signed unseen as a standing order's new amount (found in review,
 * 2026-12-07). */
export function parseNOK(text) {
  const trimmed = String(text ?? "")
    .trim()
    .replace(/\s*kr\.?$/i, "");
  const match = /^(\d{1,3}(?:[ \u00a0\u202f]\d{3})+|\d+)(?:[.,](\d{1,2}))?$/.exec(trimmed);
  if (!match) return null;
  const kroner = match[1].replace(/[ \u00a0\u202f]/g, "");
  if (kroner.length > 9) return null;
  return Number(kroner) * 100 + Number((match[2] || "").padEnd(2, "0"));
}

/** øre -> the text a form shows for it ("1234,50"). */
export function toInput(ore) {
  return formatNOK(ore)
    .replace(/\u00a0kr$/, "")
    .replace(/\u00a0/g, " ");
}
