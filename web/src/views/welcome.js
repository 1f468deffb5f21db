// Sign up and sign in (Firebase Auth; the Auth emulator locally).
import { createUserWithEmailAndPassword, signInWithEmailAndPassword } from "firebase/auth";
import { action, field, h } from "../dom.js";
import { auth } from "../firebase.js";

const MESSAGES = {
  "auth/email-already-in-use": "There is already a user with this e-mail address: sign in instead.",
  "auth/invalid-credential": "Wrong e-mail address or password.",
  "auth/wrong-password": "Wrong e-mail address or password.",
  "auth/user-not-found": "Wrong e-mail address or password.",
  "auth/weak-password": "The password needs at least 6 characters.",
  "auth/invalid-email": "That is not an e-mail address.",
};

export function welcomeView() {
  const email = h("input", { type: "email", name: "email", autocomplete: "username", required: true, testid: "email" });
  const password = h("input", {
    type: "password",
    name: "password",
    autocomplete: "current-password",
    required: true,
    minlength: "6",
    testid: "password",
  });
  const error = h("p", { class: "error", testid: "auth-error" });
  const signUp = h("button", { type: "submit", class: "primary", testid: "sign-up" }, "Create a user");
  const signIn = h("button", { type: "button", testid: "sign-in" }, "Sign in");
  const run = (button, fn) =>
    action(button, error, async () => {
      try {
        await fn(auth, email.value.trim(), password.value);
      } catch (err) {
        throw new Error(MESSAGES[err.code] || err.message);
      }
    });
  signUp.addEventListener("click", run(signUp, createUserWithEmailAndPassword));
  signIn.addEventListener("click", run(signIn, signInWithEmailAndPassword));
  const form = h(
    "form",
    { class: "card narrow", onSubmit: (e) => e.preventDefault() },
    h("h2", {}, "Welcome to Fjordbank"),
    h("p", { class: "muted" }, "Create a user to become a customer, or sign in."),
    field("E-mail", email),
    field("Password", password, "At least 6 characters."),
    h("div", { class: "buttons" }, signUp, signIn),
    error,
  );
  return { el: form };
}
