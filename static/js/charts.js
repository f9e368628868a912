// The campaign dashboards: ECharts drawn from the JSON the page embeds (#chart-data, labels in
// #chart-labels), and tables sorted by a click on their headers. No inline scripts and no eval,
// so the Content-Security-Policy can forbid both. Amounts arrive in fen and are shown in yuan.
(function () {
  "use strict";

  // -- sortable tables --------------------------------------------------------------------------
  function cellValue(row, index, type) {
    const cell = row.cells[index];
    const raw = cell ? (cell.dataset.sort ?? cell.textContent.trim()) : "";
    if (type === "number") {
      const value = Number.parseFloat(raw);
      return Number.isNaN(value) ? Number.NEGATIVE_INFINITY : value;
    }
    return raw;
  }

  function sortTable(table, header) {
    const index = Array.prototype.indexOf.call(header.parentElement.children, header);
    const type = header.dataset.sortType || "text";
    const current = header.getAttribute("aria-sort");
    // Numbers start with the largest, text starts from the beginning of the alphabet.
    let direction;
    if (current === "descending") direction = "ascending";
    else if (current === "ascending") direction = "descending";
    else direction = type === "number" ? "descending" : "ascending";
    const collator = new Intl.Collator(document.documentElement.lang || "zh-CN");
    const body = table.tBodies[0];
    const rows = Array.from(body.rows);
    rows.sort((a, b) => {
      const x = cellValue(a, index, type);
      const y = cellValue(b, index, type);
      const order = type === "number" ? x - y : collator.compare(x, y);
      return direction === "ascending" ? order : -order;
    });
    rows.forEach((row) => body.appendChild(row));
    header.parentElement.querySelectorAll("th[aria-sort]").forEach((th) => {
      th.setAttribute("aria-sort", "none");
    });
    header.setAttribute("aria-sort", direction);
  }

  document.addEventListener("click", (event) => {
    if (!(event.target instanceof Element)) return;
    const button = event.target.closest("table[data-sortable] thead th .sort-button");
    if (!button) return;
    const header = button.closest("th");
    sortTable(header.closest("table"), header);
  });

  // -- charts -----------------------------------------------------------------------------------
  function readJson(id) {
    const element = document.getElementById(id);
    if (!element) return null;
    try {
      return JSON.parse(element.textContent);
    } catch (error) {
      console.warn("chart data unreadable", error);
      return null;
    }
  }

  const yuanFormat = new Intl.NumberFormat("zh-CN", {
    minimumFractionDigits: 2,
    maximumFractionDigits: 2,
  });

  // Names come from co-ops, units and organizers: a tooltip formatter returns HTML, so every
  // text put into it is escaped first (ECharts escapes only its own default tooltips).
  const HTML_ESCAPES = { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" };

  function escapeHtml(value) {
    return String(value ?? "").replace(/[&<>"']/g, (char) => HTML_ESCAPES[char]);
  }

  function yuan(fen) {
    return "¥" + yuanFormat.format(fen / 100);
  }

  function shortYuan(value) {
    if (Math.abs(value) >= 10000) return (value / 10000).toFixed(1) + "万";
    return String(Math.round(value));
  }

  const charts = [];

  function chartIn(id) {
    const element = document.getElementById(id);
    if (!element || !window.echarts) return null;
    const chart = window.echarts.init(element, null, { renderer: "canvas" });
    charts.push(chart);
    return chart;
  }

  function emptyTitle(labels) {
    return {
      text: labels.empty || "—",
      left: "center",
      top: "middle",
      textStyle: { color: "#999", fontSize: 14, fontWeight: "normal" },
    };
  }

  function drawTrend(data, labels) {
    const chart = chartIn("chart-trend");
    if (!chart || !data.trend) return;
    const trend = data.trend;
    chart.setOption({
      color: ["#198754", "#0d6efd"],
      tooltip: {
        trigger: "axis",
        valueFormatter: (value) => "¥" + yuanFormat.format(value),
      },
      legend: { data: [labels.weekly, labels.cumulative], bottom: 0 },
      grid: { left: 8, right: 8, top: 24, bottom: 32, containLabel: true },
      xAxis: { type: "category", data: trend.weeks.map((week) => week.slice(5)) },
      yAxis: [
        { type: "value", axisLabel: { formatter: shortYuan } },
        { type: "value", axisLabel: { formatter: shortYuan }, splitLine: { show: false } },
      ],
      series: [
        {
          name: labels.weekly,
          type: "line",
          areaStyle: { opacity: 0.15 },
          data: trend.amount_fen.map((fen) => fen / 100),
        },
        {
          name: labels.cumulative,
          type: "line",
          yAxisIndex: 1,
          symbol: "none",
          lineStyle: { type: "dashed" },
          data: trend.cumulative_fen.map((fen) => fen / 100),
        },
      ],
    });
  }

  function drawCategories(data, labels) {
    const chart = chartIn("chart-categories");
    if (!chart || !data.categories) return;
    if (data.categories.length === 0) {
      chart.setOption({ title: emptyTitle(labels) });
      return;
    }
    chart.setOption({
      tooltip: {
        trigger: "item",
        formatter: (item) =>
          `${escapeHtml(item.name)}<br>${escapeHtml(yuan(item.value * 100))} ` +
          `(${escapeHtml(item.percent)}%)`,
      },
      legend: { type: "scroll", bottom: 0 },
      series: [
        {
          type: "pie",
          radius: ["35%", "65%"],
          center: ["50%", "45%"],
          label: { formatter: "{b}\n{d}%" },
          data: data.categories.map((c) => ({ name: c.name, value: c.value_fen / 100 })),
        },
      ],
    });
  }

  function drawUnits(data, labels) {
    const chart = chartIn("chart-units");
    if (!chart || !data.top_units) return;
    const units = data.top_units;
    if (units.names.length === 0) {
      chart.setOption({ title: emptyTitle(labels) });
      return;
    }
    // Largest at the top: a horizontal bar chart draws its categories from the bottom.
    const names = units.names.slice().reverse();
    const counted = units.counted_fen.slice().reverse().map((fen) => fen / 100);
    const target = units.target_fen.slice().reverse().map((fen) => fen / 100);
    chart.setOption({
      color: ["#198754", "#ced4da"],
      tooltip: {
        trigger: "axis",
        axisPointer: { type: "shadow" },
        valueFormatter: (value) => "¥" + yuanFormat.format(value),
      },
      legend: { data: [labels.counted, labels.target], bottom: 0 },
      grid: { left: 8, right: 16, top: 8, bottom: 32, containLabel: true },
      xAxis: { type: "value", axisLabel: { formatter: shortYuan } },
      yAxis: {
        type: "category",
        data: names,
        axisLabel: { width: 140, overflow: "truncate" },
      },
      series: [
        { name: labels.counted, type: "bar", data: counted, barMaxWidth: 18 },
        { name: labels.target, type: "bar", data: target, barMaxWidth: 18 },
      ],
    });
  }

  function drawAll() {
    const data = readJson("chart-data");
    if (!data) return;
    const labels = readJson("chart-labels") || {};
    drawTrend(data, labels);
    drawCategories(data, labels);
    drawUnits(data, labels);
    window.addEventListener("resize", () => charts.forEach((chart) => chart.resize()));
  }

  // A page shown on a big screen reloads itself now and then to show the latest figures.
  const screen = document.querySelector("[data-refresh-seconds]");
  if (screen) {
    const seconds = Number.parseInt(screen.dataset.refreshSeconds, 10);
    if (seconds > 0) window.setTimeout(() => window.location.reload(), seconds * 1000);
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", drawAll);
  } else {
    drawAll();
  }
})();
