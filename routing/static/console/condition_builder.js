// The rule editor's condition builder (test cases have their own editor, test_case_editor.js). The hidden-able JSON textareas stay the only thing
// posted (the server validates and saves); this script edits the condition through forms and checks the condition live.
(function () {
  "use strict";
  var vocabEl = document.getElementById("builder-vocabulary");
  var editor = document.getElementById("condition-editor");
  if (!vocabEl || !editor) return;
  var vocab = JSON.parse(vocabEl.textContent);
  var OPS = vocab.ops;
  var LIST_OPS = ["in", "not_in"];
  var NO_VALUE_OPS = ["exists", "missing"];
  var OP_LABELS = {eq: "equals", ne: "does not equal", gt: ">", gte: "≥", lt: "<", lte: "≤", in: "is one of",
    not_in: "is none of", contains: "contains", startswith: "starts with", endswith: "ends with",
    matches: "matches (RE2)", exists: "is present", missing: "is missing"};
  var csrf = document.querySelector("#draft input[name=csrfmiddlewaretoken]").value;

  function el(tag, attrs, children) {
    var node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (k) {
      if (k === "text") node.textContent = attrs[k];
      else if (k === "cls") node.className = attrs[k];
      else node.setAttribute(k, attrs[k]);
    });
    (children || []).forEach(function (c) { if (c) node.appendChild(c); });
    return node;
  }
  function button(label, cls, onClick) {
    var b = el("button", {type: "button", cls: cls, text: label});
    b.addEventListener("click", onClick);
    return b;
  }
  function fieldKind(field) { return vocab.fields[field] || "text"; }

  // A datalist of every field the language reads, with attribute keys seen on leads and accounts.
  var fieldList = el("datalist", {id: "builder-fields"});
  var suggestions = Object.keys(vocab.fields)
    .concat(vocab.attribute_keys.map(function (k) { return "attributes." + k; }))
    .concat(vocab.account_fields.map(function (k) { return "account." + k; }))
    .concat(vocab.account_keys.map(function (k) { return "account." + k; }));
  suggestions.forEach(function (s) { fieldList.appendChild(el("option", {value: s})); });
  document.body.appendChild(fieldList);

  // ---- the condition model: {kind: all|any, children}, {kind: not, child}, {kind: leaf, field, op, value}
  function parse(json) {
    if (json && typeof json === "object" && !Array.isArray(json)) {
      if (Array.isArray(json.all)) return {kind: "all", children: json.all.map(parse)};
      if (Array.isArray(json.any)) return {kind: "any", children: json.any.map(parse)};
      if ("not" in json) return {kind: "not", child: parse(json.not)};
      var leaf = {kind: "leaf", field: json.field || "", op: json.op || "eq"};
      if ("value" in json) leaf.value = json.value;
      return leaf;
    }
    return {kind: "leaf", field: "", op: "eq"};
  }
  function serialize(node) {
    if (node.kind === "all" || node.kind === "any") {
      var out = {};
      out[node.kind] = node.children.map(serialize);
      return out;
    }
    if (node.kind === "not") return {not: serialize(node.child)};
    var leaf = {field: node.field, op: node.op};
    if (NO_VALUE_OPS.indexOf(node.op) < 0 && node.value !== undefined && node.value !== "") leaf.value = node.value;
    return leaf;
  }
  // The root is always shown as a group; a condition saved as a bare leaf or `not` stays bare while alone.
  function rootFromJSON(json) {
    if (json === null || json === undefined || json === "") return {kind: "all", children: [], bare: false};
    var node = parse(json);
    if (node.kind === "all" || node.kind === "any") return node;
    return {kind: "all", children: [node], bare: true};
  }
  function rootToJSON(root) {
    if (!root.children.length) return null;
    if (root.bare && root.children.length === 1) return serialize(root.children[0]);
    return serialize(root);
  }
  function childPath(root, path, kind, index) {
    if (root && root.bare && root.children.length === 1) return path;
    return path + "." + kind + "[" + index + "]";
  }

  // ---- value inputs, by operator and field type
  function toNumber(text) { var n = Number(text); return text === "" || isNaN(n) ? text : n; }
  function valueInput(leaf, changed) {
    if (NO_VALUE_OPS.indexOf(leaf.op) >= 0) { delete leaf.value; return el("span", {cls: "hint", text: "(no value)"}); }
    var numeric = fieldKind(leaf.field) === "number" || typeof leaf.value === "number";
    if (LIST_OPS.indexOf(leaf.op) >= 0) return chipsInput(leaf, numeric, changed);
    if (Array.isArray(leaf.value)) leaf.value = leaf.value.length ? leaf.value[0] : "";
    if (typeof leaf.value === "boolean") {
      var select = el("select", {cls: "value", "aria-label": "value"},
        [el("option", {value: "true", text: "true"}), el("option", {value: "false", text: "false"})]);
      select.value = String(leaf.value);
      select.addEventListener("change", function () { leaf.value = select.value === "true"; changed(); });
      return select;
    }
    var type = numeric ? "number" : "text";
    var isDate = fieldKind(leaf.field) === "datetime" && ["eq", "ne", "gt", "gte", "lt", "lte"].indexOf(leaf.op) >= 0 &&
      (leaf.value === undefined || leaf.value === "" || /^\d{4}-\d\d-\d\dT\d\d:\d\d$/.test(leaf.value));
    if (isDate) type = "datetime-local";
    var input = el("input", {type: type, cls: "value", "aria-label": isDate ? "value (UTC)" : "value", step: "any"});
    input.value = leaf.value === undefined ? "" : leaf.value;
    input.addEventListener("input", function () { leaf.value = numeric ? toNumber(input.value) : input.value; changed(); });
    return input;
  }
  function chipsInput(leaf, numeric, changed) {
    if (!Array.isArray(leaf.value)) leaf.value = leaf.value === undefined || leaf.value === "" ? [] : [leaf.value];
    var box = el("span", {cls: "chips"});
    var input = el("input", {type: numeric ? "number" : "text", cls: "chip-input", step: "any",
      placeholder: "add a value, Enter", "aria-label": "add a value"});
    function draw() {
      Array.prototype.slice.call(box.querySelectorAll(".chip")).forEach(function (c) { c.remove(); });
      leaf.value.forEach(function (v, i) {
        var chip = el("span", {cls: "chip", text: String(v)});
        chip.appendChild(button("×", "chip-remove", function () { leaf.value.splice(i, 1); draw(); changed(); }));
        box.insertBefore(chip, input);
      });
    }
    function add() {
      var text = input.value.trim();
      if (!text) return;
      text.split(numeric ? /[\s,]+/ : /,/).forEach(function (part) {
        part = part.trim();
        if (part) leaf.value.push(numeric ? toNumber(part) : part);
      });
      input.value = "";
      draw();
      changed();
    }
    input.addEventListener("keydown", function (e) { if (e.key === "Enter" || e.key === ",") { e.preventDefault(); add(); } });
    input.addEventListener("change", add);
    box.appendChild(input);
    draw();
    return box;
  }

  // ---- rendering
  var root = null;
  var builder = document.getElementById("condition-builder");
  var textarea = editor.querySelector("textarea");

  function move(list, index, by) {
    var to = index + by;
    if (to < 0 || to >= list.length) return;
    var item = list.splice(index, 1)[0];
    list.splice(to, 0, item);
  }
  function rowTools(list, index, owner, after) {
    after = after || redraw;
    return el("span", {cls: "row-tools"}, [
      button("↑", "move-up", function () { move(list, index, -1); after(); }),
      button("↓", "move-down", function () { move(list, index, 1); after(); }),
      button("Remove", "remove", function () { list.splice(index, 1); if (owner) owner.bare = false; after(); }),
    ]);
  }
  function renderLeaf(leaf, path) {
    var row = el("div", {cls: "cond-row", "data-location": path});
    var field = el("input", {type: "text", cls: "field", list: "builder-fields", placeholder: "field", "aria-label": "field"});
    field.value = leaf.field;
    field.addEventListener("change", function () { leaf.field = field.value.trim(); redraw(); });
    var op = el("select", {cls: "op", "aria-label": "operator"});
    OPS.forEach(function (o) { op.appendChild(el("option", {value: o, text: OP_LABELS[o] || o})); });
    op.value = leaf.op;
    op.addEventListener("change", function () {
      var wasList = LIST_OPS.indexOf(leaf.op) >= 0;
      leaf.op = op.value;
      if (wasList !== (LIST_OPS.indexOf(leaf.op) >= 0)) delete leaf.value;
      redraw();
    });
    row.appendChild(field);
    row.appendChild(op);
    row.appendChild(valueInput(leaf, changed));
    return row;
  }
  function renderNode(node, path, owner) {
    if (node.kind === "leaf") return renderLeaf(node, path);
    if (node.kind === "not") {
      var notBox = el("div", {cls: "cond-not", "data-location": path}, [el("strong", {text: "NOT"})]);
      notBox.appendChild(renderNode(node.child, path + ".not", null));
      return notBox;
    }
    return renderGroup(node, path, null);
  }
  function renderGroup(group, path, rootNode) {
    var box = el("div", {cls: "cond-group", "data-location": path});
    var head = el("div", {cls: "group-head"});
    var kind = el("select", {cls: "group-kind", "aria-label": "match"},
      [el("option", {value: "all", text: "All of (and)"}), el("option", {value: "any", text: "Any of (or)"})]);
    kind.value = group.kind;
    kind.addEventListener("change", function () { group.kind = kind.value; group.bare = false; redraw(); });
    head.appendChild(kind);
    box.appendChild(head);
    var list = el("div", {cls: "group-children"});
    group.children.forEach(function (child, i) {
      var item = el("div", {cls: "group-item"});
      item.appendChild(renderNode(child, childPath(rootNode, path, group.kind, i), group));
      item.appendChild(rowTools(group.children, i, group));
      list.appendChild(item);
    });
    if (!group.children.length) list.appendChild(el("p", {cls: "hint", text: "No conditions yet: add one."}));
    box.appendChild(list);
    box.appendChild(el("div", {cls: "group-add"}, [
      button("+ Condition", "add-condition", function () { group.children.push({kind: "leaf", field: "", op: "eq"}); group.bare = false; redraw(); }),
      button("+ Group", "add-group", function () { group.children.push({kind: "any", children: [{kind: "leaf", field: "", op: "eq"}]}); group.bare = false; redraw(); }),
      button("+ Not", "add-not", function () { group.children.push({kind: "not", child: {kind: "leaf", field: "", op: "eq"}}); group.bare = false; redraw(); }),
    ]));
    return box;
  }
  function redraw() {
    builder.textContent = "";
    builder.appendChild(renderGroup(root, "when", root));
    changed();
  }

  // ---- sync and the live check
  var timer = null;
  function changed() {
    var json = rootToJSON(root);
    textarea.value = json === null ? "" : JSON.stringify(json, null, 2);
    scheduleCheck();
  }
  function scheduleCheck() {
    clearTimeout(timer);
    timer = setTimeout(check, 400);
  }
  var result = document.getElementById("condition-check");
  function check() {
    var condition = null;
    try { condition = textarea.value.trim() ? JSON.parse(textarea.value) : null; } catch (e) {
      result.textContent = "Not valid JSON yet: " + e.message;
      return;
    }
    fetch(editor.getAttribute("data-check-url"), {
      method: "POST", credentials: "same-origin",
      headers: {"Content-Type": "application/json", "X-CSRFToken": csrf},
      body: JSON.stringify({condition: condition}),
    }).then(function (r) { return r.json(); }).then(showCheck).catch(function () {
      result.textContent = "Could not check the condition just now; saving still validates it.";
    });
  }
  function showCheck(data) {
    result.textContent = "";
    clearErrors();
    if (data.detail) { result.appendChild(el("p", {cls: "error", text: data.detail})); return; }
    if (!data.valid) {
      data.errors.forEach(function (e) { markError(e.location, e.message); });
      return;
    }
    result.appendChild(el("p", {cls: "when-text", text: "When " + data.text}));
    result.appendChild(el("p", {cls: data.matches_all ? "error match-count" : "match-count",
      text: "This would match " + data.matches.toLocaleString() + " of your last " + data.of.toLocaleString() + " leads." +
        (data.matches_all ? " It matches every one of them: narrow it, or tick \u201cIt should match every lead\u201d to save it." : "")}));
    if (data.examples.length) {
      var ul = el("ul", {cls: "match-examples"});
      data.examples.forEach(function (x) {
        var li = el("li");
        li.appendChild(el("a", {href: x.link, text: "#" + x.id + " " + [x.name, x.email, x.company].filter(Boolean).join(" · ")}));
        li.appendChild(el("small", {cls: "hint", text: " " + Object.keys(x.fields).map(function (k) { return k + "=" + JSON.stringify(x.fields[k]); }).join(", ")}));
        ul.appendChild(li);
      });
      result.appendChild(ul);
    }
  }
  function clearErrors() {
    Array.prototype.slice.call(editor.querySelectorAll(".row-error")).forEach(function (n) { n.remove(); });
    Array.prototype.slice.call(editor.querySelectorAll(".has-error")).forEach(function (n) { n.classList.remove("has-error"); });
  }
  // `when.all[1].value` names the row whose location is the longest prefix of it.
  function markError(location, message) {
    var best = null;
    Array.prototype.slice.call(builder.querySelectorAll("[data-location]")).forEach(function (n) {
      var at = n.getAttribute("data-location");
      if ((location === at || location.indexOf(at + ".") === 0 || location.indexOf(at + "[") === 0) &&
          (!best || at.length > best.getAttribute("data-location").length)) best = n;
    });
    var text = (best ? "" : location + ": ") + message;
    if (best) {
      best.classList.add("has-error");
      best.appendChild(el("span", {cls: "error row-error", text: text}));
    } else {
      result.appendChild(el("p", {cls: "error row-error", text: location + ": " + message}));
    }
  }

  // ---- tabs
  function setupTabs(box, toBuilder, toJSON) {
    var tabs = box.querySelector(".builder-tabs");
    var pane = box.querySelector(".builder");
    var json = box.querySelector(".json-pane");
    tabs.hidden = false;
    function show(which) {
      if (which === "builder" && !toBuilder()) return;
      if (which === "json") toJSON();
      pane.hidden = which !== "builder";
      json.hidden = which === "builder";
      Array.prototype.slice.call(tabs.querySelectorAll("button")).forEach(function (b) {
        b.classList.toggle("active", b.getAttribute("data-tab") === which);
      });
    }
    tabs.addEventListener("click", function (e) { var t = e.target.getAttribute("data-tab"); if (t) show(t); });
    return show;
  }
  function jsonOrComplain(area, box) {
    var text = area.value.trim();
    var old = box.querySelector(".tab-error");
    if (old) old.remove();
    try { return {ok: true, value: text ? JSON.parse(text) : null}; } catch (e) {
      box.querySelector(".builder-tabs").after(el("p", {cls: "error tab-error",
        text: "Fix the JSON before switching to the forms: " + e.message}));
      return {ok: false};
    }
  }
  var showCondition = setupTabs(editor, function () {
    var parsed = jsonOrComplain(textarea, editor);
    if (!parsed.ok) return false;
    root = rootFromJSON(parsed.value);
    redraw();
    return true;
  }, function () {});
  textarea.addEventListener("input", scheduleCheck);
  showCondition("builder");
  // Errors the server rendered on save: put them beside their rows too.
  Array.prototype.slice.call(editor.querySelectorAll(".condition-error")).forEach(function (span) {
    var m = /^(when[^\s:]*): (.*)$/.exec(span.textContent);
    if (m) markError(m[1], m[2]);
  });

})();
