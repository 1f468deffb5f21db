// Norwegian numbers: account numbers (MOD11), KID and giro check digits (MOD10),
// and the synthetic test identity numbers the local stack accepts.

const ACCOUNT_WEIGHTS = [5, 4, 3, 2, 7, 6, 5, 4, 3, 2];
const K1 = [3, 7, 6, 1, 8, 9, 4, 5, 2];
const K2 = [5, 4, 3, 2, 7, 6, 5, 4, 3, 2];

function mod11(digits, weights) {
  const sum = weights.reduce((acc, w, i) => acc + w * Number(digits[i]), 0);
  const control = 11 - (sum % 11);
  if (control === 11) return 0;
  return control === 10 ? null : control;
}

/** "1503 00 00037" / "1503.00.00037" -> "15030000037" */
export function normalizeAccount(text) {
  return String(text ?? "").replace(/[\s.]/g, "");
}

export function isValidAccount(text) {
  const n = normalizeAccount(text);
  return /^\d{11}$/.test(n) && mod11(n, ACCOUNT_WEIGHTS) === Number(n[10]);
}

/** "15030000037" -> "1503.00.00037" */
export function formatAccount(number) {
  const n = normalizeAccount(number);
  return /^\d{11}$/.test(n) ? `${n.slice(0, 4)}.${n.slice(4, 6)}.${n.slice(6)}` : String(number ?? "");
}

/** The Luhn (MOD10) check digit of a digit string (KID, giro amount). */
export function luhn(body) {
  let total = 0;
  [...body].reverse().forEach((ch, i) => {
    let d = Number(ch);
    if (i % 2 === 0) {
      d *= 2;
      if (d > 9) d -= 9;
    }
    total += d;
  });
  return (10 - (total % 10)) % 10;
}

/**
 * A synthetic test identity number (Skatteetaten's: month + 80) for a birth date
 * "YYYY-MM-DD". The local stack accepts them; production does not.
 */
export function syntheticNationalId(birthDate) {
  const [year, month, day] = birthDate.split("-").map(Number);
  const [low, high] = year < 2000 ? [0, 499] : [500, 999];
  const rnd = new Uint32Array(1);
  for (let attempt = 0; attempt < 1000; attempt++) {
    crypto.getRandomValues(rnd);
    const individual = low + (rnd[0] % (high - low + 1));
    const body =
      [day, month + 80, year % 100].map((n) => String(n).padStart(2, "0")).join("") +
      String(individual).padStart(3, "0");
    const k1 = mod11(body, K1);
    if (k1 === null) continue;
    const k2 = mod11(body + k1, K2);
    if (k2 === null) continue;
    return `${body}${k1}${k2}`;
  }
  throw new Error("no synthetic number found");
}

/** A giro's OCR line as a phone's text recognition reads it (for trying the scanner). */
export function sampleGiroLine({ account = "15030000037", kroner = 849, ore = "00" } = {}) {
  const rnd = new Uint32Array(1);
  crypto.getRandomValues(rnd);
  const body = `2024${String(rnd[0] % 1_000_000).padStart(6, "0")}`;
  const kid = body + luhn(body);
  const check = luhn(`${kroner}${ore}`);
  return `${kid}  #  ${kroner} ${ore} ${check}  >  ${account.slice(0, 4)} ${account.slice(4, 6)} ${account.slice(6)}#`;
}

/** Today in Norway, "YYYY-MM-DD" (due dates are Oslo dates). */
export function osloToday() {
  return new Intl.DateTimeFormat("sv-SE", { timeZone: "Europe/Oslo" }).format(new Date());
}
