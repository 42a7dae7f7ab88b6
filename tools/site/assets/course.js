// The course site's own script: live explorers, math, the page's table of contents, and search over every lesson.
// Everything it needs is in the page or next to it (assets/), so it works from file:// with no network.
(function () {
  "use strict";

  // Explorers drawn in the browser (assets/explorer.js): alive from the snapshot the page embeds.
  if (window.courseExplorerBoot) window.courseExplorerBoot(document);

  // Math: KaTeX over the prose only (code and outputs keep their dollar signs).
  if (window.renderMathInElement) {
    document.querySelectorAll(".jp-MarkdownCell").forEach(function (cell) {
      window.renderMathInElement(cell, {
        delimiters: [
          { left: "$$", right: "$$", display: true },
          { left: "$", right: "$", display: false },
          { left: "\\(", right: "\\)", display: false },
          { left: "\\[", right: "\\]", display: true },
        ],
        throwOnError: false,
      });
    });
  }

  // On this page: one link per section heading.
  var toc = document.getElementById("course-toc");
  if (toc) {
    document.querySelectorAll(".jp-MarkdownCell h2[id]").forEach(function (h) {
      var a = document.createElement("a");
      a.href = "#" + h.id;
      a.textContent = h.textContent.replace(/\u00b6$/, "").trim();
      var li = document.createElement("li");
      li.appendChild(a);
      toc.appendChild(li);
    });
  }

  // Search: every word of the query must appear in a section; the heading counts twice.
  var box = document.getElementById("course-search");
  var list = document.getElementById("course-search-results");
  var index = window.COURSE_SEARCH || [];
  var lang = (document.documentElement.lang || "en").slice(0, 2);
  if (!box || !list) return;

  function snippet(text, word) {
    var i = Math.max(0, text.toLowerCase().indexOf(word) - 60);
    return (i > 0 ? "\u2026" : "") + text.slice(i, i + 160) + (i + 160 < text.length ? "\u2026" : "");
  }

  function search(query) {
    var words = query.toLowerCase().split(/\s+/).filter(function (w) { return w.length > 1; });
    if (!words.length) return [];
    var hits = [];
    index.forEach(function (e) {
      if ((e.g || "en") !== lang) return;   // a page searches the lessons of its own language
      var head = e.h.toLowerCase(), body = e.t.toLowerCase(), score = 0;
      for (var k = 0; k < words.length; k++) {
        var inHead = head.indexOf(words[k]) >= 0, inBody = body.indexOf(words[k]) >= 0;
        if (!inHead && !inBody) return;
        score += (inHead ? 2 : 0) + (inBody ? 1 : 0);
      }
      hits.push({ e: e, score: score });
    });
    hits.sort(function (a, b) { return b.score - a.score; });
    return hits.slice(0, 12).map(function (h) { return { e: h.e, words: words }; });
  }

  function show() {
    var hits = search(box.value);
    list.innerHTML = "";
    list.hidden = !box.value.trim();
    if (!hits.length && box.value.trim()) {
      var none = document.createElement("li");
      none.textContent = (lang === "zh" ? "没有哪一节同时提到：" : "No section mentions all of: ") + box.value.trim();
      list.appendChild(none);
    }
    hits.forEach(function (hit) {
      var li = document.createElement("li");
      var a = document.createElement("a");
      a.href = hit.e.p + (hit.e.a ? "#" + hit.e.a : "");
      a.textContent = hit.e.l + " \u203a " + hit.e.h;
      var small = document.createElement("small");
      small.textContent = snippet(hit.e.t, hit.words[0]);
      li.appendChild(a);
      li.appendChild(small);
      list.appendChild(li);
    });
  }

  box.addEventListener("input", show);
  box.addEventListener("keydown", function (ev) {
    if (ev.key === "Enter") {
      var first = list.querySelector("a");
      if (first) window.location.href = first.href;
    } else if (ev.key === "Escape") {
      box.value = "";
      show();
    }
  });
})();
