// The rating sheet: every keyed field of one case, answered by keyboard on the client.
//
// Why on the client: a key press that reran the server script cost a round trip per field (12
// per case with two responses). Here digits, letters and Backspace only change this element;
// the one server round trip of a case is the submission (Enter), sent as the trigger value
// "submit": {action: "submit", token, attempt, values: {field index: value}, texts: {text
// index: string}, comment}. The other actions go through the same trigger with their own
// action: "flag" and "skip" (with a reason), "revise" (the case just rated), "cancel" (a
// revision).
//
// data (from pages/components/rating_sheet.py): token (the sheet's identity: a new token is a
// new case or revision), attempt (raised by the server when it answers an action without
// moving on, so the sheet takes the server's messages and accepts keys again), fields: [{where,
// prompt, help, required, type, options: [{value, label, key}], min, max}], texts: [{where,
// prompt, required, value}], values: {index: value}, problems: {index | "text-n" | "mark" |
// "sheet": message}, submit_label, keys_help; on the rating screen also responses: [{label,
// html}] (each answer beside its own fields), draft (where this sheet's unsent picks are kept
// across a reload), comment (the stored comment), actions: {flag, skip, revise, cancel}.
// Everything is put into the page with textContent, never as HTML: item wording comes from an
// instrument file and must not be able to inject markup. The one exception is an answer's
// text, which the server has already turned into attribute-free HTML (study.rendering); it is
// parsed inertly here and rebuilt from an allow-list of tags, with no attribute at all.

const MEMORY = "__clinvalRatingSheet";
const DRAFTS = "clinval-draft:";
const ANSWER_TAGS = new Set([
  "P", "BR", "STRONG", "EM", "B", "I", "U", "S", "DEL", "CODE", "PRE", "BLOCKQUOTE", "UL", "OL",
  "LI", "H1", "H2", "H3", "H4", "H5", "H6", "HR", "TABLE", "THEAD", "TBODY", "TR", "TH", "TD",
  "SUB", "SUP", "SPAN", "DIV",
]);

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
  const actions = data.actions || {};

  // A draft: this sheet's picks not yet sent, kept in the tab's sessionStorage so that a reload
  // mid-case finds them (the server keeps nothing until Enter: a draft is not a submission, and
  // keeping it costs no round trip). Only one sheet is on screen, so only its draft is kept.
  function readDraft() {
    if (!data.draft) return null;
    try {
      return JSON.parse(window.sessionStorage.getItem(DRAFTS + data.draft) || "null");
    } catch (error) {
      return null;
    }
  }
  function keepDraft() {
    if (!data.draft) return;
    try {
      window.sessionStorage.setItem(
        DRAFTS + data.draft,
        JSON.stringify({ values: memory.values, texts: memory.texts, comment: memory.comment }),
      );
    } catch (error) {
      // storage full or disabled: the picks stay on screen, only a reload loses them
    }
  }
  function dropOtherDrafts() {
    try {
      const store = window.sessionStorage;
      for (let n = store.length - 1; n >= 0; n--) {
        const key = store.key(n);
        if (key && key.startsWith(DRAFTS) && key !== DRAFTS + data.draft) store.removeItem(key);
      }
    } catch (error) {
      // nothing kept, nothing to drop
    }
  }

  // Picks survive a re-render of the same sheet (another element's rerun, the same case shown
  // again); a new token starts afresh from the stored values, and from the draft of this case
  // when the tab had one (a reload).
  let memory = window[MEMORY];
  if (!memory || memory.token !== data.token) {
    const draft = readDraft();
    dropOtherDrafts();
    memory = {
      token: data.token,
      attempt: data.attempt,
      values: Object.assign({}, data.values || {}, (draft && draft.values) || {}),
      texts: Object.assign({}, (draft && draft.texts) || {}),
      comment: draft && draft.comment != null ? draft.comment : data.comment || "",
      active: 0,
      sending: false,
      marking: null, // "flag" or "skip" while its reason is being typed
      reason: "",
      section: null, // the response whose fields were last scrolled to
      problems: Object.assign({}, data.problems || {}),
    };
    const firstEmpty = data.fields.findIndex((_, n) => memory.values[n] == null);
    memory.active = firstEmpty >= 0 ? firstEmpty : 0;
    window[MEMORY] = memory;
  } else if (data.attempt !== memory.attempt) {
    // the server answered without moving on (a refusal, a flag stored): show its messages,
    // take keys again
    memory.attempt = data.attempt;
    memory.sending = false;
    memory.problems = Object.assign({}, data.problems || {});
    // the eye goes to the first reason, beside its field (the rater is at the Enter key)
    const first = Object.keys(memory.problems).find((k) => /^[0-9]+$/.test(k));
    if (first != null) memory.active = Number(first);
    memory.reveal = first != null ? "field" : memory.problems.sheet ? "sheet" : null;
    if (!memory.problems.mark) {
      memory.marking = null;
      memory.reason = "";
    }
  }

  const fields = data.fields;
  const responses = Array.isArray(data.responses) ? data.responses : [];
  const el = (tag, cls, text) => {
    const node = document.createElement(tag);
    if (cls) node.className = cls;
    if (text != null) node.textContent = text;
    return node;
  };

  // An answer's HTML (attribute-free, from study.rendering.safe_html), parsed inertly (no
  // script runs, nothing loads) and rebuilt tag by tag from the allow-list, attributes dropped.
  function answerNodes(html) {
    const parsed = new DOMParser().parseFromString(String(html || ""), "text/html");
    const copy = (from, into) => {
      from.childNodes.forEach((node) => {
        if (node.nodeType === Node.TEXT_NODE) {
          into.append(document.createTextNode(node.textContent));
        } else if (node.nodeType === Node.ELEMENT_NODE) {
          if (ANSWER_TAGS.has(node.tagName)) {
            const made = document.createElement(node.tagName.toLowerCase());
            copy(node, made);
            into.append(made);
          } else {
            copy(node, into); // an unexpected tag: keep its text, drop the tag
          }
        }
      });
    };
    const box = el("div", "answer");
    copy(parsed.body, box);
    return box;
  }

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
    keepDraft();
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

  function send(action, extra) {
    memory.sending = true;
    draw();
    setTriggerValue(
      "submit",
      Object.assign({ action: action, token: data.token, attempt: memory.attempt }, extra),
    );
  }

  function submit() {
    if (memory.sending) return;
    const problems = data.revising ? {} : missing();
    memory.problems = problems;
    if (Object.keys(problems).length) {
      const firstField = Object.keys(problems).find((k) => !k.startsWith("text-"));
      if (firstField != null) memory.active = Number(firstField);
      memory.reveal = "field";
      draw();
      return;
    }
    const texts = {};
    (data.texts || []).forEach((t, n) => {
      texts[n] = memory.texts[n] != null ? memory.texts[n] : t.value || "";
    });
    send("submit", { values: memory.values, texts: texts, comment: memory.comment });
  }

  function openMark(kind) {
    if (memory.sending || !actions[kind]) return;
    memory.marking = kind;
    delete memory.problems.mark;
    draw();
  }

  function sendMark() {
    if (memory.sending || !memory.marking) return;
    const reason = memory.reason.trim();
    if (!reason) {
      // said here, beside the field, before anything is sent
      memory.problems.mark =
        "A " + memory.marking + " needs a reason: type it here, then press Enter.";
      draw();
      return;
    }
    send(memory.marking, { reason: reason });
  }

  function closeMark() {
    memory.marking = null;
    memory.reason = "";
    delete memory.problems.mark;
    draw();
  }

  // Where the eye is: after a draw, the active field (and when it moved to another response,
  // that response's text with it) or the reason being typed is brought into view.
  let scrollTarget = null;

  function fieldRow(f, n) {
    const row = el("div", "field" + (n === memory.active ? " active" : ""));
    row.dataset.field = String(n);
    row.dataset.answered = memory.values[n] == null ? "no" : "yes";
    const head = el("div", "prompt");
    head.append(el("span", "marker", n === memory.active ? "▶" : "·"));
    // beside its response's text the field needs no label of its own
    if (!(responses.length && f.where)) head.append(el("span", "where", f.where ? f.where + " · " : ""));
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
        keepDraft();
      });
      options.append(input);
      if (n === memory.active && !memory.marking) setTimeout(() => input.focus(), 0);
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
    if (n === memory.active) scrollTarget = scrollTarget || row;
    return row;
  }

  function textRow(t, n) {
    const row = el("div", "text");
    const label = el("label", "", (t.where ? t.where + " · " : "") + t.prompt +
      (t.required ? "" : " (optional)"));
    const area = el("textarea");
    area.rows = 2;
    area.value = memory.texts[n] != null ? memory.texts[n] : t.value || "";
    area.addEventListener("input", () => {
      memory.texts[n] = area.value;
      keepDraft();
    });
    label.append(area);
    row.append(label);
    if (memory.problems["text-" + n]) row.append(el("div", "problem", memory.problems["text-" + n]));
    return row;
  }

  function commentRow() {
    const row = el("div", "text comment");
    const label = el("label", "");
    const head = el("span", "", "Comment on this case (optional; stored with your rating)");
    head.prepend(el("kbd", "", "C"));
    label.append(head);
    const area = el("textarea", "comment-box");
    area.rows = 2;
    area.value = memory.comment;
    area.setAttribute("aria-label", "Comment on this case");
    area.addEventListener("input", () => {
      memory.comment = area.value;
      keepDraft();
    });
    label.append(area);
    row.append(label);
    if (memory.problems.comment) row.append(el("div", "problem", memory.problems.comment));
    return row;
  }

  function markRow() {
    const row = el("div", "mark");
    const label = el("label", "", memory.marking === "flag"
      ? "Why flag this case? (it stays in your queue)"
      : "Why skip this case? (it leaves your queue)");
    const input = el("input", "reason");
    input.type = "text";
    input.value = memory.reason;
    input.setAttribute("aria-label", memory.marking === "flag" ? "Flag reason" : "Skip reason");
    input.addEventListener("input", () => {
      memory.reason = input.value;
    });
    label.append(input);
    row.append(label);
    row.append(el("div", "keys", "Enter sends the " + memory.marking + ", Esc closes."));
    if (memory.problems.mark) row.append(el("div", "problem", memory.problems.mark));
    scrollTarget = row; // the reason and its message before anything else
    return row;
  }

  function barButton(cls, key, text, handler) {
    const button = el("button", cls, text);
    button.type = "button";
    button.prepend(el("kbd", "", key));
    button.disabled = memory.sending;
    button.addEventListener("click", handler);
    return button;
  }

  function draw() {
    root.replaceChildren();
    scrollTarget = null;
    let section = null;
    if (responses.length) {
      // each response: its text beside its own fields (side by side on wide screens)
      const activeWhere = fields[memory.active] ? fields[memory.active].where : null;
      responses.forEach((r) => {
        const block = el("section", "response");
        block.dataset.response = r.label;
        const text = el("div", "response-text");
        text.append(el("div", "label", r.label));
        text.append(answerNodes(r.html));
        const items = el("div", "response-fields");
        fields.forEach((f, n) => {
          if (f.where === r.label) items.append(fieldRow(f, n));
        });
        block.append(text, items);
        root.append(block);
        if (activeWhere === r.label) section = block;
      });
      const rest = fields.map((f, n) => [f, n]).filter(([f]) => !responses.some((r) => r.label === f.where));
      if (rest.length) {
        const block = el("section", "case-fields");
        rest.forEach(([f, n]) => block.append(fieldRow(f, n)));
        root.append(block);
      }
    } else {
      fields.forEach((f, n) => root.append(fieldRow(f, n)));
    }
    (data.texts || []).forEach((t, n) => root.append(textRow(t, n)));
    if (data.draft) root.append(commentRow());

    const sheetProblem = memory.problems.sheet ? el("div", "problem", memory.problems.sheet) : null;
    if (sheetProblem) root.append(sheetProblem);
    if (memory.marking) root.append(markRow());
    const bar = el("div", "bar");
    bar.append(barButton("back", "⌫", "Back", () => stepBack()));
    const sendButton = barButton("submit", "Enter", memory.sending ? "Saving…" : data.submit_label,
      () => submit());
    bar.append(sendButton);
    if (actions.flag) bar.append(barButton("flag", "F", "Flag", () => openMark("flag")));
    if (actions.skip) bar.append(barButton("skip", "S", "Skip", () => openMark("skip")));
    if (actions.revise) {
      bar.append(barButton("revise", "R", "Revise the case just rated", () => revise()));
    }
    if (actions.cancel) bar.append(barButton("cancel", "Esc", "Cancel the revision", () => cancel()));
    root.append(bar);
    root.append(el("div", "keys", data.keys_help));
    // the reason box takes the very next key: focused now, not after a tick, so a rater typing
    // at once after F loses no letter
    const reasonBox = memory.marking ? root.querySelector("input.reason") : null;
    if (reasonBox) reasonBox.focus();

    // a new response's fields bring that response's text into view with them; otherwise the
    // active field (or the reason form) is kept in view
    let target = scrollTarget;
    const reveal = memory.reveal;
    memory.reveal = null;
    if (reveal === "sheet" && sheetProblem) target = sheetProblem;
    if (!reveal && !memory.marking && section) {
      const box = section.getBoundingClientRect();
      const away = box.top > window.innerHeight * 0.6 || box.bottom < 0;
      if (section.dataset.response !== memory.section || away) target = section;
      memory.section = section.dataset.response;
    }
    // a case's first showing stays where the page starts (its question): only moves scroll
    const first = !memory.drawn;
    memory.drawn = true;
    if ((!first || reveal) && target && target.scrollIntoView) {
      const block = reveal ? "center" : section && target === section ? "start" : "nearest";
      setTimeout(() => target.scrollIntoView({ block: block }), 0);
    }
  }

  function stepBack() {
    if (memory.sending) return;
    memory.active = Math.max(0, memory.active - 1);
    draw();
  }

  function revise() {
    if (memory.sending || !actions.revise) return;
    send("revise", {});
  }

  function cancel() {
    if (memory.sending || !actions.cancel) return;
    send("cancel", {});
  }

  function focusComment() {
    const area = root.querySelector("textarea.comment-box");
    if (area) {
      area.focus();
      area.scrollIntoView({ block: "nearest" });
    }
  }

  function onKey(event) {
    if (event.defaultPrevented || event.altKey || event.metaKey) return;
    // the element that has the key: inside the sheet's shadow root the event's target is the
    // root's host, so the composed path's first element is the one to ask
    const path = event.composedPath ? event.composedPath() : [];
    const target = path.length ? path[0] : event.target;
    const tag = target && target.tagName ? target.tagName.toLowerCase() : "";
    const typing = tag === "textarea" || tag === "select" ||
      (tag === "input" && target.type !== "number") || (target && target.isContentEditable);
    const inNumber = tag === "input" && target.type === "number";
    const inReason = typing && target.classList && target.classList.contains("reason");
    const inSheet = path.includes(root);
    if (event.key === "Escape" && inSheet && typing) {
      // leave the box: the keys pick again
      event.preventDefault();
      if (inReason) closeMark();
      else target.blur();
      return;
    }
    if (event.key === "Enter" && inReason) {
      event.preventDefault();
      sendMark();
      return;
    }
    // a control of the page outside the sheet (a button, the revise picker's number) keeps
    // its own Enter
    const ownEnter = !inSheet && (inNumber || tag === "button" || tag === "a");
    if (event.key === "Enter" && !ownEnter && (!typing || (event.ctrlKey && inSheet))) {
      if (inNumber) target.dispatchEvent(new Event("change"));
      event.preventDefault();
      submit();
      return;
    }
    if (typing || inNumber || event.ctrlKey) return;
    if (event.key === "Escape") {
      if (memory.marking) closeMark();
      else if (actions.cancel) cancel();
      return;
    }
    if (event.key === "Backspace") {
      event.preventDefault();
      stepBack();
      return;
    }
    const key = event.key.length === 1 ? event.key.toUpperCase() : "";
    const field = fields[memory.active];
    const option =
      field && field.type !== "numeric" ? field.options.find((o) => o.key === key) : null;
    const command = {
      F: () => openMark("flag"),
      S: () => openMark("skip"),
      R: () => revise(),
      C: () => focusComment(),
    }[key];
    if (option) {
      event.preventDefault();
      pick(memory.active, option.value);
    } else if (command && data.draft) {
      // Streamlit's own page keys are R (rerun the app) and C (clear its cache), listened to
      // on the document: this listener sits before them (the window, capture phase) and keeps
      // the rater's key from reaching them, also when the key has nothing to do here (R with
      // no case rated yet would otherwise rerun the whole screen). The Design screen's preview
      // (no draft) leaves them to Streamlit.
      event.preventDefault();
      event.stopPropagation();
      command();
    }
  }

  draw();
  // One listener at a time. Streamlit calls this function again when the data change (the
  // next case) without calling the cleanup first, so the last sheet's listener is removed here:
  // left in place, it would take keys for a case that is gone.
  const LISTENER = MEMORY + "Keys";
  if (window[LISTENER]) window.removeEventListener("keydown", window[LISTENER], true);
  window[LISTENER] = onKey;
  window.addEventListener("keydown", onKey, true);
  return () => {
    window.removeEventListener("keydown", onKey, true);
    if (window[LISTENER] === onKey) window[LISTENER] = null;
  };
}
