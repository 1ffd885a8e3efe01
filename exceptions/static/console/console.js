// Console behaviour: live countdowns to due times, keyboard triage (j/k/o/a/r/e/w/x, g i, g q, / to search, ?, Esc), select-all for bulk.
(function () {
  "use strict";
  // "Due soon" starts when the reminder goes out (HANDOFF_REMINDER_MINUTES).
  let SOON_MS = 10 * 60 * 1000;

  function describe(ms) {
    const total = Math.round(Math.abs(ms) / 1000);
    const h = Math.floor(total / 3600), m = Math.floor((total % 3600) / 60), s = total % 60;
    const text = h ? `${h}h ${m}m` : m ? `${m}m ${s}s` : `${s}s`;
    return ms < 0 ? `overdue ${text}` : `in ${text}`;
  }

  function tick() {
    const now = Date.now();
    document.querySelectorAll("time[data-due]").forEach((el) => {
      const left = Date.parse(el.dataset.due) - now;
      el.textContent = describe(left);
      el.classList.toggle("past", left < 0);
      el.classList.toggle("soon", left >= 0 && left <= SOON_MS);
    });
  }

  function rows() { return Array.from(document.querySelectorAll("tr[data-item]")); }
  function selected() { return document.querySelector("tr[data-item].selected"); }

  function select(row, focus = true, scroll = true) {
    rows().forEach((r) => { r.classList.remove("selected"); r.setAttribute("aria-selected", "false"); });
    if (row) {
      row.classList.add("selected");
      row.setAttribute("aria-selected", "true");
      // Focus follows the selection, so a screen reader announces it and Tab continues from it.
      if (!row.hasAttribute("tabindex")) row.tabIndex = -1;
      if (focus) row.focus({ preventScroll: true });
      if (scroll) row.scrollIntoView({ block: "nearest" });
    }
  }

  function move(step) {
    const all = rows();
    if (!all.length) return;
    const index = all.indexOf(selected());
    select(all[Math.min(all.length - 1, Math.max(0, index + step))] || all[0]);
  }

  // The list reloads after an action: the selection comes back on the row after the one acted on (a, j, a, j
  // walks the queue, however the acknowledged item re-sorts), or on the same item when it was the last.
  const REMEMBERED = "handoff.selected";
  function remember(row) {
    const all = rows(), index = all.indexOf(row), next = all[index + 1] || row;
    sessionStorage.setItem(REMEMBERED, JSON.stringify({ path: location.pathname + location.search, id: next.dataset.item, index: index }));
  }
  function remembered() {
    const saved = JSON.parse(sessionStorage.getItem(REMEMBERED) || "null");
    sessionStorage.removeItem(REMEMBERED);
    if (!saved || saved.path !== location.pathname + location.search) return rows()[0];
    const all = rows();
    return all.find((r) => r.dataset.item === saved.id) || all[Math.min(saved.index, all.length - 1)];
  }

  function csrf() {
    const input = document.querySelector("input[name=csrfmiddlewaretoken]");
    return input ? input.value : "";
  }

  function postAndReload(url) {
    const form = document.createElement("form");
    form.method = "post"; form.action = url;
    // Values set as properties, never parsed as markup, whatever the URL holds.
    for (const [name, value] of [["csrfmiddlewaretoken", csrf()], ["next", location.pathname + location.search]]) {
      const input = document.createElement("input");
      input.type = "hidden"; input.name = name; input.value = value;
      form.appendChild(input);
    }
    document.body.appendChild(form);
    form.submit();
  }

  let goPending = false;

  function onKey(event) {
    if (event.ctrlKey || event.metaKey || event.altKey) return;
    const tag = (event.target.tagName || "").toLowerCase();
    const help = document.getElementById("help");
    if (event.key === "Escape" && !help.hidden) { help.hidden = true; event.preventDefault(); return; }
    // Enter on a focused button or link does what that control does, never "open the selected row".
    if (event.key === "Enter" && ["button", "a", "summary"].includes(tag)) return;
    // Browsers do not submit a form on Enter in a <select>: resolve does, once a code is chosen.
    if (event.key === "Enter" && event.target.matches("#resolve select")) {
      event.preventDefault();
      document.getElementById("resolve").requestSubmit();
      return;
    }
    // Esc leaves a field (the search box, a note) so j/k and the other keys work again.
    if (event.key === "Escape" && ["input", "textarea", "select"].includes(tag)) { event.target.blur(); return; }
    if (["input", "textarea", "select"].includes(tag)) return;
    const page = document.body.dataset.page;
    if (event.key === "?") { help.hidden = !help.hidden; event.preventDefault(); return; }
    // g then i / q: go to the items or the queues (the second key within a second).
    if (goPending && (event.key === "i" || event.key === "q")) {
      goPending = false;
      location.href = event.key === "i" ? "/console/items/" : "/console/";
      event.preventDefault();
      return;
    }
    if (event.key === "z" && document.getElementById("undo")) { document.getElementById("undo").requestSubmit(); event.preventDefault(); return; }
    if (event.key === "g") { goPending = true; setTimeout(() => { goPending = false; }, 1000); return; }
    const search = document.querySelector("form.filters input[name=q]");
    if (event.key === "/" && search) { search.focus(); search.select(); event.preventDefault(); return; }
    if (page === "list") {
      const row = selected();
      if (event.key === "j") move(1);
      else if (event.key === "k") move(-1);
      else if ((event.key === "o" || event.key === "Enter") && row) location.href = row.dataset.url;
      else if (event.key === "a" && row) { remember(row); postAndReload(row.dataset.ackUrl); }
      else if (event.key === "r" && row) location.href = row.dataset.url + "#resolve";
      else if (event.key === "x" && row) { const box = row.querySelector("input[type=checkbox]"); box.checked = !box.checked; }
      else return;
      event.preventDefault();
    } else if (page === "detail") {
      const head = document.querySelector(".detail-head");
      if (event.key === "j" && head.dataset.next) location.href = head.dataset.next;
      else if (event.key === "k" && head.dataset.previous) location.href = head.dataset.previous;
      else if (event.key === "a" && document.getElementById("acknowledge")) document.getElementById("acknowledge").submit();
      else if (event.key === "r" && document.getElementById("resolve")) document.querySelector("#resolve select").focus();
      else if (event.key === "e" && document.getElementById("assign-me")) document.getElementById("assign-me").submit();
      else if (event.key === "w" && document.getElementById("waiting")) document.querySelector("#waiting input[name=note]").focus();
      else return;
      event.preventDefault();
    }
  }

  // A table wider than the screen scrolls inside itself (phone layout): keyboard users reach it with Tab.
  function markScrollable() {
    document.querySelectorAll("table.grid, .scroll-x").forEach((el) => {
      if (el.scrollWidth > el.clientWidth) el.tabIndex = 0;
      else el.removeAttribute("tabindex");
    });
  }

  document.addEventListener("DOMContentLoaded", () => {
    markScrollable();
    window.addEventListener("resize", markScrollable);
    const undo = document.getElementById("undo");
    if (undo) setTimeout(() => undo.remove(), Number(undo.dataset.seconds) * 1000);
    const soon = parseFloat(document.body.dataset.soonMinutes);
    if (!Number.isNaN(soon)) SOON_MS = soon * 60 * 1000;
    tick();
    setInterval(tick, 1000);
    document.addEventListener("keydown", onKey);
    document.querySelectorAll("[data-help-toggle]").forEach((b) => b.addEventListener("click", () => {
      const help = document.getElementById("help"); help.hidden = !help.hidden;
    }));
    // Duplicate, spam and not a lead need a note: the browser asks for it before the round trip.
    document.querySelectorAll("#resolve select[name=resolution]").forEach((code) => code.addEventListener("change", () => {
      const note = code.form.querySelector("[name=note]");
      if (note) note.required = ["duplicate", "spam", "not_a_lead"].includes(code.value);
    }));
    // "Apply to all N matching this filter" says what it will do to how many, and waits for a yes.
    const bulk = document.getElementById("bulk");
    if (bulk) bulk.addEventListener("submit", (event) => {
      const button = event.submitter;
      if (!button || button.value !== "filter") return;
      const pick = (name) => bulk.querySelector(`select[name=${name}]`);
      const action = pick("action").selectedOptions[0].textContent;
      const detail = pick("action").value === "resolve" ? ` as ${pick("resolution").selectedOptions[0].textContent}`
        : pick("action").value === "assign" ? ` ${pick("assignee").selectedOptions[0].textContent}` : "";
      if (!window.confirm(`${action}${detail}: all ${button.dataset.count} items matching this filter?`)) event.preventDefault();
    });
    const all = document.querySelector("[data-select-all]");
    if (all) all.addEventListener("change", () => {
      document.querySelectorAll("input[name=items]").forEach((box) => { box.checked = all.checked; });
    });
    // The list's rows refresh by themselves (htmx, every HANDOFF_LIST_REFRESH_SECONDS): ticked boxes and the
    // selection survive the swap.
    let kept = null;
    document.body.addEventListener("htmx:beforeRequest", (event) => {
      // A hidden tab does not poll (a trigger filter would need eval, which the CSP refuses).
      if (event.detail.elt.id === "item-rows" && document.visibilityState !== "visible") event.preventDefault();
    });
    document.body.addEventListener("htmx:beforeSwap", (event) => {
      if (event.detail.target.id !== "item-rows") return;
      const row = selected();
      kept = {
        ticked: Array.from(document.querySelectorAll("input[name=items]:checked")).map((box) => box.value),
        selected: row ? row.dataset.item : null,
        focused: row !== null && document.activeElement === row,
      };
    });
    document.body.addEventListener("htmx:afterSettle", () => {
      if (!kept) return;
      document.querySelectorAll("input[name=items]").forEach((box) => { box.checked = kept.ticked.includes(box.value); });
      const again = rows().find((r) => r.dataset.item === kept.selected) || rows()[0];
      select(again, kept.focused, false);  // a refresh never moves the page
      tick();
      kept = null;
    });
    // `r` on the list opens the item at #resolve: its code picker takes the next key. After the page's load, as
    // the browser's own move to the fragment would otherwise take the focus back.
    if (location.hash === "#resolve" && document.querySelector("#resolve select")) {
      window.addEventListener("load", () => document.querySelector("#resolve select").focus());
    }
    if (document.body.dataset.page === "list") select(remembered(), false);  // the first Tab stays the skip link
  });
})();
