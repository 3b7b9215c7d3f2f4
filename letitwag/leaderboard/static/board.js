// Sorting and filtering for the leaderboard's tables; no dependencies, works from file://.
// A cell's sort value is its data-v attribute if present (numbers), else its text; empty values sort last.
(function () {
  "use strict";

  function compare(type, a, b) {
    if (type === "num") { return parseFloat(a) - parseFloat(b); }
    return a.localeCompare(b);
  }

  function sortValue(cell) {
    var value = cell.dataset.v;
    return value === undefined ? cell.textContent.trim().toLowerCase() : value;
  }

  function makeSortable(table) {
    var headers = table.tHead.rows[0].cells;
    Array.prototype.forEach.call(headers, function (th, column) {
      var button = th.querySelector("button");
      if (!button) { return; }
      button.addEventListener("click", function () {
        var current = th.getAttribute("aria-sort");
        var first = th.dataset.first === "desc" ? "descending" : "ascending";
        var order = current ? (current === "ascending" ? "descending" : "ascending") : first;
        Array.prototype.forEach.call(headers, function (other) { other.removeAttribute("aria-sort"); });
        th.setAttribute("aria-sort", order);
        var sign = order === "ascending" ? 1 : -1;
        var body = table.tBodies[0];
        var rows = Array.prototype.slice.call(body.rows);
        rows.sort(function (r1, r2) {
          var a = sortValue(r1.cells[column]), b = sortValue(r2.cells[column]);
          if (a === "" && b === "") { return 0; }
          if (a === "") { return 1; }
          if (b === "") { return -1; }
          return sign * compare(th.dataset.type, a, b);
        });
        var fragment = document.createDocumentFragment();
        rows.forEach(function (row) { fragment.appendChild(row); });
        body.appendChild(fragment);
      });
    });
  }

  function makeFilter(input, table, counter) {
    var rows = Array.prototype.slice.call(table.tBodies[0].rows);
    function apply() {
      var words = input.value.toLowerCase().split(/\s+/).filter(Boolean);
      var shown = 0;
      rows.forEach(function (row) {
        var text = row.dataset.text || row.textContent.toLowerCase();
        var match = words.every(function (word) { return text.indexOf(word) !== -1; });
        row.hidden = !match;
        if (match) { shown += 1; }
      });
      if (counter) { counter.textContent = shown + " of " + rows.length + " shown"; }
    }
    input.addEventListener("input", apply);
    apply();
  }

  document.addEventListener("DOMContentLoaded", function () {
    Array.prototype.forEach.call(document.querySelectorAll("table.sortable"), makeSortable);
    var input = document.getElementById("filter"), board = document.getElementById("board");
    if (input && board) { makeFilter(input, board, document.getElementById("shown")); }
  });
}());
