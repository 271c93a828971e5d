// The per-query drill-down: three selects (setting, arm, language pair) choose which rows
// of the embedded data the table shows, largest absolute change first.
(function () {
  "use strict";
  var root = document.getElementById("drilldown-app");
  if (!root) { return; }
  var page = JSON.parse(document.getElementById("xlrun-data").textContent);
  var drill = page.drilldown, rows = drill.rows, col = {};
  drill.columns.forEach(function (c, i) { col[c] = i; });
  var perPair = drill.per_pair, perSetting = drill.per_setting;
  var sSetting = document.getElementById("drill-setting");
  var sArm = document.getElementById("drill-arm");
  var sPair = document.getElementById("drill-pair");
  var body = document.getElementById("drill-body");
  var caption = document.getElementById("drill-caption");
  function scopeOf(r) {
    return (drill.datasets > 1 ? r[col.dataset] + "/" + r[col.split] + " · " : "") + r[col.setting];
  }
  function pairOf(r) { return r[col.query_lang] + "→" + r[col.doc_lang]; }
  function unique(values) {
    var seen = {}, out = [];
    values.forEach(function (v) { if (!seen[v]) { seen[v] = true; out.push(v); } });
    return out;
  }
  function fill(select, values, first) {
    var keep = select.value;
    select.innerHTML = "";
    (first ? [first] : []).concat(values).forEach(function (v) {
      var o = document.createElement("option");
      o.value = v; o.textContent = v; select.appendChild(o);
    });
    if (values.indexOf(keep) >= 0 || keep === first) { select.value = keep; }
  }
  function fmt(v, signed) {
    if (v === null || v === undefined) { return "NA"; }
    var s = v.toFixed(4);
    return signed && v >= 0 ? "+" + s : s;
  }
  function render() {
    var inScope = rows.filter(function (r) {
      return scopeOf(r) === sSetting.value && r[col.arm] === sArm.value;
    });
    fill(sPair, unique(inScope.map(pairOf)).sort(), "all pairs");
    var all = sPair.value === "all pairs";
    var shown = inScope.filter(function (r) { return all || pairOf(r) === sPair.value; })
      .sort(function (a, b) {
        return Math.abs(b[col.delta]) - Math.abs(a[col.delta]) ||
          (a[col.query_id] < b[col.query_id] ? -1 : 1);
      }).slice(0, all ? perSetting : perPair);
    body.innerHTML = "";
    shown.forEach(function (r) {
      var tr = document.createElement("tr");
      [r[col.query_id], pairOf(r), fmt(r[col.baseline]), fmt(r[col.value]),
       fmt(r[col.delta], true), r[col.runs] + " / " + r[col.baseline_runs]].forEach(function (v, i) {
        var td = document.createElement("td");
        td.textContent = v;
        if (i >= 2) { td.className = "num"; }
        if (i === 4) { td.className += r[col.delta] >= 0 ? " up" : " down"; }
        tr.appendChild(td);
      });
      body.appendChild(tr);
    });
    caption.textContent = shown.length + " question(s) of " + sSetting.value + ", " +
      sArm.value + " vs " + drill.baseline + ", " + sPair.value;
  }
  fill(sSetting, unique(rows.map(scopeOf)));
  fill(sArm, unique(rows.map(function (r) { return r[col.arm]; })));
  sSetting.addEventListener("change", render);
  sArm.addEventListener("change", render);
  sPair.addEventListener("change", render);
  render();
}());
