// Onboarding: this browser enrols its device key (SCA) first, then applies. The bank
// checks the identity number, age and contact data, screens the name against the
// sanctions list and answers approved (with the first account), review or rejected.
import { ensureDeviceKey } from "../device.js";
import { action, field, fill, h, toast } from "../dom.js";
import { call, config } from "../firebase.js";
import { syntheticNationalId } from "../norway.js";
import { onSession, refreshCustomer, session } from "../session.js";

const REASONS = {
  invalid_national_id: "The identity number is not valid.",
  birth_date_mismatch: "The date of birth does not match the identity number.",
  under_18: "You must be at least 18 to become a customer.",
  identity_in_use: "This identity number is already a customer.",
  already_onboarded: "You have already applied.",
  // the bank answers this browser's own key sent again (an earlier try) as enrolled
  sca_key_exists: "Another device is already enrolled for this user: apply from that device.",
};

async function enrolDevice(uid) {
  const key = await ensureDeviceKey(uid);
  await call("sca_register_key", { keyId: key.keyId, publicKey: key.publicKey });
}

function applicationForm(uid) {
  const input = (name, props = {}) => h("input", { name, testid: `apply-${name}`, required: true, ...props });
  const name = input("name", { autocomplete: "name" });
  const born = input("dateOfBirth", { type: "date" });
  const nationalId = input("nationalId", { inputmode: "numeric", pattern: "[0-9 ]{11,13}" });
  const street = input("street", { autocomplete: "street-address" });
  const postalCode = input("postalCode", { inputmode: "numeric", pattern: "[0-9]{4}" });
  const city = input("city");
  const phone = input("phone", { type: "tel", autocomplete: "tel" });
  const email = input("email", { type: "email", value: session.user?.email || "" });
  const error = h("p", { class: "error", testid: "apply-error" });
  const progress = h("p", { class: "muted", testid: "apply-progress" });
  const submit = h("button", { type: "submit", class: "primary", testid: "apply-submit" }, "Apply");

  const synthetic = h("button", { type: "button", testid: "synthetic-id" }, "Use a synthetic test identity");
  synthetic.addEventListener("click", () => {
    if (!born.value) born.value = "1990-05-17";
    nationalId.value = syntheticNationalId(born.value);
  });

  const form = h(
    "form",
    { class: "card narrow", testid: "onboarding" },
    h("h2", {}, "Become a customer"),
    h("p", { class: "muted" }, "We need to know who you are (the Money Laundering Act). It takes a minute."),
    field("Full name", name),
    field("Date of birth", born),
    field("National identity number (11 digits)", nationalId),
    config.local
      ? h("p", { class: "local" }, "Local stack: ", synthetic, " fills a Skatteetaten synthetic number (month + 80).")
      : null,
    field("Street address", street),
    h("div", { class: "row" }, field("Postal code", postalCode), field("City", city)),
    field("Mobile phone", phone),
    field("E-mail", email),
    h("div", { class: "buttons" }, submit),
    progress,
    error,
  );
  form.addEventListener(
    "submit",
    action(submit, error, async () => {
      progress.textContent = "Enrolling this device for payment confirmations …";
      try {
        await enrolDevice(uid);
        progress.textContent = "Sending the application …";
        const result = await call("onboarding_submit", {
          name: name.value.trim(),
          nationalId: nationalId.value.replace(/\s/g, ""),
          dateOfBirth: born.value,
          address: { street: street.value.trim(), postalCode: postalCode.value.trim(), city: city.value.trim() },
          phone: phone.value.trim(),
          email: email.value.trim(),
        });
        progress.textContent = "";
        if (result.status === "approved") toast("Welcome! Your first account is open.", "ok");
        await refreshCustomer();
      } catch (err) {
        progress.textContent = "";
        if (REASONS[err.reason]) err.message = REASONS[err.reason];
        throw err;
      }
    }),
  );
  return form;
}

function decisionCard(customer) {
  if (customer.status === "review") {
    return h(
      "div",
      { class: "card narrow", testid: "onboarding-review" },
      h("h2", {}, "We are looking at your application"),
      h("p", {}, "A person at the bank checks it (usually within a working day). This page updates by itself."),
      config.local
        ? h(
            "p",
            { class: "local" },
            "Local stack: decide it with `bankctl reviews approve UID --reason WHY --by NAME`.",
          )
        : null,
    );
  }
  return h(
    "div",
    { class: "card narrow", testid: "onboarding-rejected" },
    h("h2", {}, "We cannot offer you an account"),
    h(
      "p",
      {},
      customer.reason && customer.reason !== "not_approved"
        ? `Reason: ${customer.reason}.`
        : "Contact us if you think this is wrong.",
    ),
  );
}

export function onboardingView() {
  const el = h("div", {});
  let shown = null;
  const stop = onSession((s) => {
    const state = s.customer ? s.customer.status : "apply";
    if (state === shown) return;
    shown = state;
    fill(el, s.customer ? decisionCard(s.customer) : applicationForm(s.user.uid));
  });
  return { el, stop };
}
