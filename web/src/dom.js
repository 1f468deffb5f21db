// A tiny DOM builder: text is always set as text (never parsed as HTML).

const SVG = "http://www.w3.org/2000/svg";

function nodes(children) {
  return children
    .flat(Infinity)
    .filter((child) => child !== null && child !== undefined && child !== false)
    .map((child) => (child instanceof Node ? child : document.createTextNode(String(child))));
}

function build(el, props, children) {
  el.append(...nodes(children));
  for (const [key, value] of Object.entries(props || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith("on") && typeof value === "function") el.addEventListener(key.slice(2).toLowerCase(), value);
    else if (key === "testid") el.setAttribute("data-testid", value);
    else if (key === "value" || key === "checked" || key === "disabled") el[key] = value;
    else el.setAttribute(key === "className" ? "class" : key, value === true ? "" : String(value));
  }
  return el;
}

/** h("button", {class: "primary", onClick}, "Pay") */
export function h(tag, props, ...children) {
  return build(document.createElement(tag), props, children);
}

/** Replace what `el` shows (null, undefined and false are left out, as in h). */
export function fill(el, ...children) {
  el.replaceChildren(...nodes(children));
  return el;
}

/** The same for SVG elements (the economy chart). */
export function svg(tag, props, ...children) {
  return build(document.createElementNS(SVG, tag), props, children);
}

/** A short message at the bottom of the screen (the three newest are shown). */
export function toast(text, kind = "info") {
  const box = document.getElementById("toasts");
  const el = h("div", { class: `toast ${kind}`, testid: "toast", role: "status" }, text);
  box.append(el);
  while (box.children.length > 3) box.firstElementChild.remove();
  setTimeout(() => el.remove(), 5000);
}

/** A form field with its label. */
export function field(label, input, hint) {
  return h("label", { class: "field" }, h("span", {}, label), input, hint ? h("small", {}, hint) : null);
}

/** Runs an async action from a button: disabled while it runs, errors shown under it. */
export function action(button, errorBox, run) {
  return async (event) => {
    event?.preventDefault?.();
    button.disabled = true;
    errorBox.textContent = "";
    try {
      await run();
    } catch (err) {
      errorBox.textContent = err.reason ? `${err.message} (${err.reason})` : err.message;
    } finally {
      button.disabled = false;
    }
  };
}
