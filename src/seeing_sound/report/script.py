"""The index page's only code: search and filter pairs by concept text, in the browser, offline.

``report/index.js`` (written by :mod:`seeing_sound.report.site`) sets ``window.SEEING_SOUND_INDEX``:
``pairs`` ([page, row in page, pair id, [concept ids]]), ``pages`` (shard names) and ``concepts``
(the distinct concept texts). A ``<script src>`` file, unlike ``fetch()``, loads from ``file://``.
Untrusted text (pair ids, concepts) reaches the page through ``textContent`` only, never as HTML.
"""

SEARCH_JS = r"""(function () {
  "use strict";
  var data = window.SEEING_SOUND_INDEX;
  var box = document.getElementById("search");
  var status = document.getElementById("search-status");
  var list = document.getElementById("results");
  if (!box || !status || !list) { return; }
  if (!data) { status.textContent = "the search index (report/index.js) did not load"; return; }
  var LIMIT = 100;
  var lower = data.concepts.map(function (c) { return String(c).toLowerCase(); });
  function pad(n) { var s = String(n); while (s.length < 6) { s = "0" + s; } return s; }
  function clear() { while (list.firstChild) { list.removeChild(list.firstChild); } }
  function item(p, matched) {
    var page = data.pages[p[0]];
    var li = document.createElement("li");
    var a = document.createElement("a");
    a.href = "report/pages/" + page + ".html#" + page + "-" + pad(p[1]);
    a.textContent = p[2];
    li.appendChild(a);
    matched.forEach(function (c) {
      var span = document.createElement("span");
      span.className = "tag";
      span.textContent = data.concepts[c];
      li.appendChild(document.createTextNode(" "));
      li.appendChild(span);
    });
    var where = document.createElement("span");
    where.className = "muted";
    where.textContent = " " + page;
    li.appendChild(where);
    return li;
  }
  function render() {
    var q = box.value.trim().toLowerCase();
    clear();
    if (!q) { status.textContent = data.pairs.length + " pairs indexed; type a concept to filter"; return; }
    var hit = new Uint8Array(lower.length), i, j;
    for (i = 0; i < lower.length; i++) { if (lower[i].indexOf(q) !== -1) { hit[i] = 1; } }
    var total = 0, frag = document.createDocumentFragment();
    for (i = 0; i < data.pairs.length; i++) {
      var p = data.pairs[i], matched = [];
      for (j = 0; j < p[3].length; j++) { if (hit[p[3][j]]) { matched.push(p[3][j]); } }
      if (!matched.length) { continue; }
      total++;
      if (total <= LIMIT) { frag.appendChild(item(p, matched)); }
    }
    list.appendChild(frag);
    status.textContent = total + " of " + data.pairs.length + " pairs match" +
      (total > LIMIT ? " (first " + LIMIT + " shown)" : "");
  }
  box.addEventListener("input", render);
  Array.prototype.forEach.call(document.querySelectorAll("button[data-q]"), function (b) {
    b.addEventListener("click", function () { box.value = b.getAttribute("data-q"); render(); });
  });
  if (location.hash.indexOf("#q=") === 0) { box.value = decodeURIComponent(location.hash.slice(3)); }
  render();
})();
"""
