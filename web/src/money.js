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

/** What a person types ("1 234,50", "150", "99.9 kr") -> øre, or null if it is not an amount. */
export function parseNOK(text) {
  const compact = String(text ?? "")
    .trim()
    .replace(/\s*kr\.?$/i, "")
    .replace(/[\s\u00a0\u202f]/g, "");
  const match = /^(\d{1,9})(?:[.,](\d{1,2}))?$/.exec(compact);
  if (!match) return null;
  return Number(match[1]) * 100 + Number((match[2] || "").padEnd(2, "0"));
}

/** øre -> the text a form shows for it ("1234,50"). */
export function toInput(ore) {
  return formatNOK(ore)
    .replace(/\u00a0kr$/, "")
    .replace(/\u00a0/g, " ");
}
