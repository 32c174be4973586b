// The rating sheet: every keyed field of one case, answered by keyboard on the client.
//
// Why on the client: a key press that reran the server script cost a round trip per field (12
// per case with two responses). Here digits, letters and Backspace only change this element;
// the one server round trip of a case is the submission (Enter), sent as the trigger value
// "submit": {token, attempt, values: {field index: value}, texts: {text index: string}}.
//
// data (from pages/components/rating_sheet.py): token (the sheet's identity: a new token is a
// new case or revision), attempt (raised by the server when it refuses a submission, so the
// sheet takes the server's messages and accepts keys again), fields: [{where, prompt, help,
// required, type, options: [{value, label, key}], min, max}], texts: [{where, prompt,
// required, value}], values: {index: value}, problems: {index: message}, submit_label.
// Everything is put into the page with textContent, never as HTML: item wording comes from an
// instrument file and must not be able to inject markup.

const MEMORY = "__clinvalRatingSheet";

export default function (component) {
  const { parentElement, setTriggerValue } = component;
  // the server sends the data as UTF-8 JSON bytes (see rating_sheet.py)
  const raw = component.data;
  const data =
    raw instanceof Uint8Array || raw instanceof ArrayBuffer
      ? JSON.parse(new TextDecoder().decode(raw))
      : typeof raw === "string"
        ? JSON.parse(raw)
        : raw;
  const root = parentElement.querySelector(".sheet") || document.createElement("div");
  root.className = "sheet";
  if (!root.parentNode) parentElement.appendChild(root);
  if (!data || !Array.isArray(data.fields)) return;

  // Picks survive a re-render of the same sheet (another element's rerun, the same case shown
  // again); a new token starts afresh from the stored values.
  let memory = window[MEMORY];
  if (!memory || memory.token !== data.token) {
    memory = {
      token: data.token,
      attempt: data.attempt,
      values: Object.assign({}, data.values || {}),
      texts: {},
      active: 0,
      sending: false,
      problems: Object.assign({}, data.problems || {}),
    };
    const firstEmpty = data.fields.findIndex((_, n) => memory.values[n] == null);
    memory.active = firstEmpty >= 0 ? firstEmpty : 0;
    window[MEMORY] = memory;
  } else if (data.attempt !== memory.attempt) {
    // the server refused the last submission: show its reasons, take keys again
    memory.attempt = data.attempt;
    memory.sending = false;
    memory.problems = Object.assign({}, data.problems || {});
  }

  const fields = data.fields;
  const el = (tag, cls, text) => {
    const node = document.createElement(tag);
    if (cls) node.className = cls;
    if (text != null) node.textContent = text;
    return node;
  };

  function moveOn(from) {
    const empty = fields.map((_, n) => n).filter((n) => memory.values[n] == null);
    const later = empty.filter((n) => n > from);
    memory.active = later.length ? later[0] : empty.length ? empty[0] : from;
  }

  function pick(n, value) {
    if (memory.sending) return;
    memory.values[n] = value;
    delete memory.problems[n];
    moveOn(n);
    draw();
  }

  function missing() {
    const out = {};
    fields.forEach((f, n) => {
      if (f.required && memory.values[n] == null) out[n] = "Required: pick a value.";
    });
    (data.texts || []).forEach((t, n) => {
      const typed = memory.texts[n] != null ? memory.texts[n] : t.value || "";
      if (t.required && !String(typed).trim()) out["text-" + n] = "Required: type an answer.";
    });
    return out;
  }

  function submit() {
    if (memory.sending) return;
    const problems = data.revising ? {} : missing();
    memory.problems = problems;
    if (Object.keys(problems).length) {
      const firstField = Object.keys(problems).find((k) => !k.startsWith("text-"));
      if (firstField != null) memory.active = Number(firstField);
      draw();
      return;
    }
    const texts = {};
    (data.texts || []).forEach((t, n) => {
      texts[n] = memory.texts[n] != null ? memory.texts[n] : t.value || "";
    });
    memory.sending = true;
    draw();
    setTriggerValue("submit", {
      token: data.token,
      attempt: memory.attempt,
      values: memory.values,
      texts: texts,
    });
  }

  function draw() {
    root.replaceChildren();
    fields.forEach((f, n) => {
      const row = el("div", "field" + (n === memory.active ? " active" : ""));
      row.dataset.field = String(n);
      row.dataset.answered = memory.values[n] == null ? "no" : "yes";
      const head = el("div", "prompt");
      head.append(el("span", "marker", n === memory.active ? "▶" : "·"));
      head.append(el("span", "where", f.where ? f.where + " · " : ""));
      head.append(el("span", "", f.prompt));
      if (!f.required) head.append(el("span", "optional", " (optional)"));
      row.append(head);
      if (n === memory.active && f.help) row.append(el("div", "help", f.help));
      const options = el("div", "options");
      if (f.type === "numeric") {
        const input = el("input", "number");
        input.type = "number";
        if (f.min != null) input.min = String(f.min);
        if (f.max != null) input.max = String(f.max);
        input.step = "any";
        input.value = memory.values[n] != null ? String(memory.values[n]) : "";
        input.setAttribute("aria-label", (f.where ? f.where + " · " : "") + f.prompt);
        input.addEventListener("focus", () => {
          if (memory.active !== n) {
            memory.active = n;
            draw();
          }
        });
        input.addEventListener("change", () => {
          const text = input.value.trim();
          memory.values[n] = text === "" ? null : Number(text);
          delete memory.problems[n];
        });
        options.append(input);
        if (n === memory.active) setTimeout(() => input.focus(), 0);
      } else {
        f.options.forEach((o) => {
          const chosen = memory.values[n] != null && memory.values[n] === o.value;
          const button = el("button", "option" + (chosen ? " chosen" : ""));
          button.type = "button";
          if (o.key) button.append(el("kbd", "", o.key));
          button.append(el("span", "", o.label));
          button.addEventListener("click", () => {
            memory.active = n;
            pick(n, o.value);
          });
          options.append(button);
        });
      }
      row.append(options);
      if (memory.problems[n]) row.append(el("div", "problem", memory.problems[n]));
      root.append(row);
    });

    (data.texts || []).forEach((t, n) => {
      const row = el("div", "text");
      const label = el("label", "", (t.where ? t.where + " · " : "") + t.prompt +
        (t.required ? "" : " (optional)"));
      const area = el("textarea");
      area.rows = 2;
      area.value = memory.texts[n] != null ? memory.texts[n] : t.value || "";
      area.addEventListener("input", () => {
        memory.texts[n] = area.value;
      });
      label.append(area);
      row.append(label);
      if (memory.problems["text-" + n]) row.append(el("div", "problem", memory.problems["text-" + n]));
      root.append(row);
    });

    if (memory.problems.sheet) root.append(el("div", "problem", memory.problems.sheet));
    const bar = el("div", "bar");
    const back = el("button", "back", "Back");
    back.type = "button";
    back.prepend(el("kbd", "", "⌫"));
    back.addEventListener("click", () => stepBack());
    const send = el("button", "submit", memory.sending ? "Saving…" : data.submit_label);
    send.type = "button";
    send.disabled = memory.sending;
    send.prepend(el("kbd", "", "Enter"));
    send.addEventListener("click", () => submit());
    bar.append(back, send);
    root.append(bar);
    root.append(el("div", "keys", data.keys_help));
  }

  function stepBack() {
    if (memory.sending) return;
    memory.active = Math.max(0, memory.active - 1);
    draw();
  }

  function onKey(event) {
    if (event.defaultPrevented || event.altKey || event.metaKey) return;
    const target = event.target;
    const tag = target && target.tagName ? target.tagName.toLowerCase() : "";
    const typing = tag === "textarea" || (tag === "input" && target.type !== "number") ||
      (target && target.isContentEditable);
    const inNumber = tag === "input" && target.type === "number";
    if (event.key === "Enter" && (!typing || event.ctrlKey)) {
      if (inNumber) target.dispatchEvent(new Event("change"));
      event.preventDefault();
      submit();
      return;
    }
    if (typing || inNumber || event.ctrlKey) return;
    if (event.key === "Backspace") {
      event.preventDefault();
      stepBack();
      return;
    }
    const field = fields[memory.active];
    if (!field || field.type === "numeric") return;
    const key = event.key.length === 1 ? event.key.toUpperCase() : "";
    const option = field.options.find((o) => o.key === key);
    if (option) {
      event.preventDefault();
      pick(memory.active, option.value);
    }
  }

  draw();
  // One listener at a time. Streamlit calls this function again when the data change (the
  // next case) without calling the cleanup first, so the last sheet's listener is removed here:
  // left in place, it would take keys for a case that is gone.
  const LISTENER = MEMORY + "Keys";
  if (window[LISTENER]) document.removeEventListener("keydown", window[LISTENER]);
  window[LISTENER] = onKey;
  document.addEventListener("keydown", onKey);
  return () => {
    document.removeEventListener("keydown", onKey);
    if (window[LISTENER] === onKey) window[LISTENER] = null;
  };
}
