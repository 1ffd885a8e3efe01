// The draft editor's test cases as forms: one card per case (its name, the sample lead's fields, the expected
// outcome), with a JSON tab for power users. The `test_cases` textarea stays the one thing posted and the server
// the authority: every change here is written back to it, and the server's located errors and stored results
// (rendered under the textarea, readable without JavaScript) are put beside their case.
(function () {
  "use strict";
  var box = document.getElementById("test-cases");
  var vocabEl = document.getElementById("test-case-vocabulary");
  if (!box || !vocabEl) return;
  var vocab = JSON.parse(vocabEl.textContent);
  var area = box.querySelector("textarea");
  var pane = document.getElementById("case-forms");
  var note = document.getElementById("case-note");
  var tabs = box.querySelector(".case-tabs");
  var jsonPane = box.querySelector(".case-json");
  var form = box.closest("form");
  var NO_MATCH = "";
  var cases = [];
  var changed = false; // the draft differs from the one the stored results are for

  function el(tag, attrs, children) {
    var node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (k) {
      if (k === "text") node.textContent = attrs[k];
      else if (k === "cls") node.className = attrs[k];
      else node.setAttribute(k, attrs[k]);
    });
    (children || []).forEach(function (c) { if (c) node.appendChild(typeof c === "string" ? document.createTextNode(c) : c); });
    return node;
  }
  function button(label, cls, onClick, aria) {
    var b = el("button", {type: "button", cls: cls, text: label});
    if (aria) b.setAttribute("aria-label", aria);
    b.addEventListener("click", onClick);
    return b;
  }
  function isObject(v) { return v !== null && typeof v === "object" && !Array.isArray(v); }
  function kindOf(value) {
    if (typeof value === "number") return "number";
    if (typeof value === "boolean") return "boolean";
    if (typeof value === "string") return "text";
    return "json"; // null, lists, objects: edited as JSON so they come back exactly as they were
  }

  // ---- JSON <-> cards. A case's lead is a list of {key, value, kind}; attributes are "attributes.<key>" rows.
  function fitProblem(list) {
    if (!Array.isArray(list)) return "the test cases are not a list";
    for (var i = 0; i < list.length; i++) {
      var c = list[i], where = "case " + (i + 1) + " ";
      if (!isObject(c)) return where + "is not an object";
      var extra = Object.keys(c).filter(function (k) { return ["name", "lead", "expect"].indexOf(k) < 0; });
      if (extra.length) return where + "has " + extra.join(", ") + " (a case has only name, lead and expect)";
      if (typeof c.name !== "string") return where + "has no name";
      if (!isObject(c.lead)) return where + "has no lead object";
      if ("attributes" in c.lead && !isObject(c.lead.attributes)) return where + "has attributes that are not an object";
      var e = c.expect, keys = isObject(e) ? Object.keys(e) : [];
      var ok = keys.length === 1 && ((keys[0] === "queue" && typeof e.queue === "string") || (keys[0] === "match" && e.match === false));
      if (!ok) return where + 'expects neither {"queue": "…"} nor {"match": false}';
    }
    return null;
  }
  function fromJSON(list) {
    return list.map(function (c) {
      var fields = [];
      Object.keys(c.lead).forEach(function (k) {
        if (k === "attributes") {
          Object.keys(c.lead.attributes).forEach(function (a) {
            fields.push({key: "attributes." + a, value: c.lead.attributes[a], kind: kindOf(c.lead.attributes[a])});
          });
          if (!Object.keys(c.lead.attributes).length) fields.push({key: "attributes", value: {}, kind: "json"});
        } else fields.push({key: k, value: c.lead[k], kind: kindOf(c.lead[k])});
      });
      return {name: c.name, fields: fields, expect: "queue" in c.expect ? c.expect.queue : NO_MATCH, problems: [], result: null};
    });
  }
  function toJSON() {
    return cases.map(function (c) {
      var lead = {};
      c.fields.forEach(function (f) {
        if (f.key.indexOf("attributes.") === 0) {
          if (!isObject(lead.attributes)) lead.attributes = {};
          lead.attributes[f.key.slice(11)] = f.value;
        } else lead[f.key] = f.value;
      });
      return {name: c.name, lead: lead, expect: c.expect === NO_MATCH ? {match: false} : {queue: c.expect}};
    });
  }
  function write() {
    area.value = JSON.stringify(toJSON(), null, 2);
    markChanged();
  }
  function markChanged() {
    if (changed) return;
    changed = true;
    var results = document.getElementById("case-results");
    if (results) results.classList.add("outdated");
    Array.prototype.forEach.call(pane.querySelectorAll(".case-result"), function (badge) {
      badge.textContent = "changed: runs again when you save";
      badge.className = "case-result outdated";
    });
  }

  // ---- the cards
  function fieldInput(c, f, number) {
    var label = "Case " + number + " " + f.key;
    var input;
    if (f.kind === "boolean") {
      input = el("select", {"aria-label": label}, [el("option", {value: "true", text: "true"}), el("option", {value: "false", text: "false"})]);
      input.value = String(f.value);
      input.addEventListener("change", function () { f.value = input.value === "true"; write(); });
      return input;
    }
    var numeric = f.kind === "number";
    input = el("input", {type: numeric ? "number" : "text", "aria-label": label, cls: "case-value"});
    if (numeric) input.setAttribute("step", "any");
    input.value = f.kind === "json" ? JSON.stringify(f.value) : (f.value === null || f.value === undefined ? "" : String(f.value));
    input.addEventListener("input", function () {
      input.removeAttribute("aria-invalid");
      if (numeric) f.value = input.value === "" ? null : Number(input.value);
      else if (f.kind === "json") {
        try { f.value = JSON.parse(input.value); } catch (err) { input.setAttribute("aria-invalid", "true"); return; }
      } else f.value = input.value;
      write();
    });
    return input;
  }
  function fieldPicker(c, number, redraw) {
    var used = c.fields.map(function (f) { return f.key; });
    var picker = el("select", {cls: "case-add-field", "aria-label": "Case " + number + ": add a field"});
    picker.appendChild(el("option", {value: "", text: "+ add a field…"}));
    var leadGroup = el("optgroup", {label: "Lead fields"});
    Object.keys(vocab.fields).forEach(function (name) {
      if (used.indexOf(name) < 0) leadGroup.appendChild(el("option", {value: name, text: name}));
    });
    var attrGroup = el("optgroup", {label: "Attributes"});
    vocab.attribute_keys.forEach(function (key) {
      if (used.indexOf("attributes." + key) < 0) attrGroup.appendChild(el("option", {value: "attributes." + key, text: "attributes." + key}));
    });
    attrGroup.appendChild(el("option", {value: "attributes.", text: "another attribute…"}));
    picker.appendChild(leadGroup);
    picker.appendChild(attrGroup);
    var keyInput = el("input", {type: "text", cls: "case-attribute-key", placeholder: "attribute key", "aria-label": "Case " + number + ": attribute key", hidden: ""});
    var addKey = button("Add", "case-attribute-add", function () {
      var key = keyInput.value.trim();
      if (!/^[A-Za-z0-9_\-]+$/.test(key)) { keyInput.setAttribute("aria-invalid", "true"); return; }
      add("attributes." + key, "text");
    }, "Case " + number + ": add the attribute");
    addKey.hidden = true;
    function add(key, kind) {
      if (used.indexOf(key) < 0) {
        if (key.indexOf("attributes.") === 0) vocab.attribute_keys.push(key.slice(11));
        c.fields.push({key: key, value: kind === "number" ? null : "", kind: kind});
        write();
      }
      redraw(key);
    }
    picker.addEventListener("change", function () {
      if (picker.value === "attributes.") { keyInput.hidden = false; addKey.hidden = false; keyInput.focus(); return; }
      if (picker.value) add(picker.value, vocab.fields[picker.value] === "number" ? "number" : "text");
    });
    return el("span", {cls: "case-picker"}, [picker, keyInput, addKey]);
  }
  function expectSelect(c, number) {
    var select = el("select", {cls: "case-expect", "aria-label": "Case " + number + " expected outcome"});
    select.appendChild(el("option", {value: NO_MATCH, text: "no match"}));
    var queues = vocab.queues.slice();
    if (c.expect !== NO_MATCH && queues.indexOf(c.expect) < 0) queues.push(c.expect);
    queues.forEach(function (q) {
      var unknown = vocab.queues.indexOf(q) < 0;
      select.appendChild(el("option", {value: q, text: "queue " + q + (q === vocab.rule_queue ? " (this rule's)" : "") + (unknown ? " (no such queue)" : "")}));
    });
    select.value = c.expect;
    select.addEventListener("change", function () { c.expect = select.value; write(); });
    return select;
  }
  function problemFor(c, field) {
    return c.problems.filter(function (p) { return p.field === field || p.field.indexOf(field + ".") === 0; });
  }
  function card(c, i, focusKey) {
    var number = i + 1;
    var node = el("section", {cls: "case-card" + (c.problems.length ? " has-error" : ""), "data-case": String(i), "aria-label": "Case " + number});
    var name = el("input", {type: "text", cls: "case-name", maxlength: "200", "aria-label": "Case " + number + " name", placeholder: "what this case checks"});
    name.value = c.name;
    name.addEventListener("input", function () { c.name = name.value; write(); });
    var head = el("div", {cls: "case-head"}, [el("strong", {text: "Case " + number}), name]);
    if (c.result && changed) head.appendChild(el("span", {cls: "case-result outdated", text: "changed: runs again when you save"}));
    else if (c.result) {
      var r = c.result;
      var text = r.passed ? "✓ passed (" + r.got + ")" : "✗ failed: expected " + r.expected + ", got " + r.got + (r.why ? " — " + r.why : "");
      head.appendChild(el("span", {cls: "case-result " + (r.passed ? "ok" : "fail"), text: text}));
    }
    node.appendChild(head);
    var list = el("div", {cls: "case-fields"});
    c.fields.forEach(function (f, j) {
      var input = fieldInput(c, f, number);
      var errors = problemFor(c, "lead." + f.key.split(".")[0]);
      if (errors.length) input.setAttribute("aria-invalid", "true");
      var row = el("div", {cls: "case-field" + (errors.length ? " invalid" : "")}, [el("code", {text: f.key}), input,
        button("×", "case-remove-field", function () { c.fields.splice(j, 1); write(); draw(); }, "Case " + number + ": remove " + f.key)]);
      errors.forEach(function (p) { row.appendChild(el("span", {cls: "error", text: p.message})); });
      list.appendChild(row);
      if (focusKey === f.key) setTimeout(function () { input.focus(); }, 0);
    });
    list.appendChild(fieldPicker(c, number, function (key) { draw(i, key); }));
    node.appendChild(list);
    var expect = expectSelect(c, number);
    if (problemFor(c, "expect").length) expect.setAttribute("aria-invalid", "true");
    node.appendChild(el("label", {cls: "case-expect-label"}, ["Expect ", expect]));
    if (problemFor(c, "name").length) name.setAttribute("aria-invalid", "true");
    // Errors not tied to a field shown above (the name, the expectation, the lead as a whole, the case's size).
    c.problems.forEach(function (p) {
      var shownAtField = p.field.indexOf("lead.") === 0 && c.fields.some(function (f) { return "lead." + f.key.split(".")[0] === p.field.split(".").slice(0, 2).join("."); });
      if (!shownAtField) node.appendChild(el("p", {cls: "error", text: (p.field ? p.field + ": " : "") + p.message}));
    });
    node.appendChild(el("div", {cls: "case-tools"}, [
      button("Duplicate", "case-duplicate", function () {
        var copy = JSON.parse(JSON.stringify({name: c.name, fields: c.fields, expect: c.expect}));
        copy.name = c.name + " (copy)";
        copy.problems = [];
        copy.result = null;
        cases.splice(i + 1, 0, copy);
        write();
        draw(i + 1);
      }, "Duplicate case " + number),
      button("Remove", "case-remove", function () { cases.splice(i, 1); write(); draw(); }, "Remove case " + number),
    ]));
    return node;
  }
  function draw(focusCase, focusKey) {
    pane.textContent = "";
    if (!cases.length) pane.appendChild(el("p", {cls: "hint", text: "No test cases yet. A rule needs at least one before it is promoted."}));
    cases.forEach(function (c, i) { pane.appendChild(card(c, i, focusCase === i ? focusKey : undefined)); });
    pane.appendChild(button("+ Add a test case", "case-add", function () {
      var fields = [{key: "email", value: "", kind: "text"}];
      cases.push({name: "case " + (cases.length + 1), fields: fields, expect: vocab.rule_queue || NO_MATCH, problems: [], result: null});
      write();
      draw(cases.length - 1, "email");
    }));
    if (focusCase !== undefined && focusKey === undefined) {
      var name = pane.querySelector('[data-case="' + focusCase + '"] .case-name');
      if (name) name.focus();
    }
  }

  // ---- tabs
  function parseArea() {
    var text = area.value.trim();
    if (!text) return {ok: true, value: []};
    try { return {ok: true, value: JSON.parse(text)}; } catch (err) { return {ok: false, problem: "The JSON does not parse (" + err.message + ")"}; }
  }
  function say(message) { note.textContent = message || ""; note.hidden = !message; }
  function show(tab) {
    if (tab === "forms") {
      var parsed = parseArea();
      var problem = parsed.ok ? fitProblem(parsed.value) : parsed.problem;
      if (problem) { say(problem + ": fix it in the JSON tab to edit the cases as forms."); tab = "json"; }
      else {
        say("");
        var before = cases;
        cases = fromJSON(parsed.value);
        // Located errors and results belong to a case by position; keep them while the list is the same length.
        if (before.length === cases.length) cases.forEach(function (c, i) { c.problems = before[i].problems; c.result = before[i].result; });
        draw();
      }
    }
    pane.hidden = tab !== "forms";
    jsonPane.hidden = tab !== "json";
    Array.prototype.forEach.call(tabs.querySelectorAll("[data-tab]"), function (b) {
      b.setAttribute("aria-selected", String(b.getAttribute("data-tab") === tab));
      b.classList.toggle("active", b.getAttribute("data-tab") === tab);
    });
  }
  tabs.addEventListener("click", function (event) {
    var b = event.target.closest("[data-tab]");
    if (b) show(b.getAttribute("data-tab"));
  });
  form.addEventListener("input", function (event) { if (!pane.contains(event.target)) markChanged(); });
  form.addEventListener("change", function (event) { if (!pane.contains(event.target)) markChanged(); });

  // ---- start: what the server said about each case, then the forms (or JSON when the cases do not fit them)
  var parsed = parseArea();
  if (parsed.ok && !fitProblem(parsed.value)) cases = fromJSON(parsed.value);
  Array.prototype.forEach.call(box.querySelectorAll("#case-problems li[data-case]"), function (li) {
    var i = li.getAttribute("data-case");
    if (i !== "" && cases[Number(i)]) cases[Number(i)].problems.push({field: li.getAttribute("data-field"), message: li.getAttribute("data-message")});
  });
  Array.prototype.forEach.call(box.querySelectorAll("#case-results li[data-case]"), function (li) {
    var c = cases[Number(li.getAttribute("data-case"))];
    if (c) c.result = {passed: li.getAttribute("data-passed") === "true", got: li.getAttribute("data-got"),
      expected: li.getAttribute("data-expected"), why: li.getAttribute("data-why")};
  });
  tabs.hidden = false;
  show("forms");
})();
