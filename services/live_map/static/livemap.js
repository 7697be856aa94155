// tracklayer live map: the track store's live picture on a globe or a flat map.
// Plain JS + canvas, no dependencies. Data: a WebSocket from the store (/live: a snapshot,
// then updates of reports and status); reports as protobuf bytes decoded by wire.js, kept by picture.js
// (tracks, trails, satellites); units: degrees, metres, m/s, seconds since the Unix
// epoch. Satellites are drawn at their sub-points where the reports last placed them,
// with dashed lines of sight to the tracks they just updated.
// The page's state is exposed as window.tracklayerMap (tests read it).
"use strict";

(function () {
  const SAT_STALE_S = 60;    // satellites placed longer ago than this (report time) are not drawn
  const FIT_ZOOM = 8;        // the automatic framing zooms no closer: the land stays in view
  const FOLLOW_S = 10;       // re-frame the tracks this often until the user moves the view
  const D2R = Math.PI / 180;

  const canvas = document.getElementById("map");
  const ctx = canvas.getContext("2d");
  const tip = document.getElementById("tip");
  const details = document.getElementById("details");

  const picture = window.tracklayerPicture();  // tracks, trails, satellites (picture.js)
  const tracks = picture.tracks;  // id -> {rep, trail: [[t, lat, lon, alt], ...]}
  // follow: frame the tracks (every FOLLOW_S) until the user drags or zooms; reset: again
  const view = { mode: "globe", lon0: 0, lat0: 20, zoom: 1, centred: false, follow: true };
  let framedAt = -Infinity;
  const stats = {
    messages: 0, reports: 0, frames: 0, lastFrameMs: 0, maxFrameMs: 0, frameMs: [],
    updateMs: [], lastUpdateMs: 0, maxUpdateMs: 0, decodeMs: [],
    // where each update's time went (ms): decode, apply (the picture), wait (for
    // the next animation frame), draw
    parts: [],
  };
  const drawn = {
    tracks: 0, impactEllipses: 0, impactEllipsePx: 0, launches: 0, labels: 0, satellites: 0,
    sightLines: 0, scaleKm: 0,
  };
  let sensors = [];          // the satellites list: {id, tracks, t, pos}, by id
  let status = {};
  let selected = null;
  let highlight = null;      // sensor id under the mouse in the satellite list
  let dirty = false;
  let pendingSince = null;   // performance.now() of the first unrendered message
  let part = null;           // that update's parts so far (stats.parts)
  const geo = window.tracklayerGeo(view);
  const wire = window.tracklayerWire;
  const { wrap, globeRadius, flatScale, project } = geo;
  // the picture drawn (draw.js); it reads the selection and the highlight from here
  const draw = window.tracklayerDraw(ctx, tracks, geo, view, drawn, {
    get selected() { return selected; }, get highlight() { return highlight; },
  });
  const { colour, SAT_COLOUR } = draw;
  function size() { return { w: canvas.clientWidth, h: canvas.clientHeight }; }

  // Satellites where the reports last placed them (sub-points), drawn while recent.
  function placedSatellites() {
    const shown = sensors.filter((s) => s.pos && s.pos.lat != null && s.pos.lon != null);
    const newest = Math.max(...shown.map((s) => s.pos.t));
    return new Map(shown.filter((s) => newest - s.pos.t <= SAT_STALE_S).map((s) => [s.id, s]));
  }

  function render() {
    const t0 = performance.now();
    const { w, h } = size();
    const dpr = window.devicePixelRatio || 1;
    if (canvas.width !== Math.round(w * dpr) || canvas.height !== Math.round(h * dpr)) {
      canvas.width = Math.round(w * dpr); canvas.height = Math.round(h * dpr);
    }
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    geo.clampFlat(w, h);  // no empty band beyond a pole: the flat map fills the height
    // an update's frame notes each step's time (ms) in its part: where the drawing goes
    const steps = part ? {} : null;
    let ts = t0;
    const step = (name) => { if (steps) { const t = performance.now(); steps[name] = t - ts; ts = t; } };
    ctx.drawImage(geo.background(w, h), 0, 0, w, h); step("land");
    const sats = placedSatellites();
    draw.sightLines(w, h, sats); step("sight");
    draw.trails(w, h); step("trails");
    draw.ground(w, h); step("ground");
    draw.satellites(w, h, sats); step("sats");
    draw.points(w, h); step("points");
    drawn.scaleKm = geo.drawScale(ctx, w, h);
    const t1 = performance.now();
    stats.frames++; stats.lastFrameMs = t1 - t0; stats.maxFrameMs = Math.max(stats.maxFrameMs, t1 - t0);
    push(stats.frameMs, t1 - t0);
    if (pendingSince !== null) {
      const u = t1 - pendingSince;
      if (part) {
        part.draw = t1 - t0; part.wait = u - part.draw - part.decode - part.apply - (part.status || 0);
        part.steps = steps;
        push(stats.parts, part); part = null;
      }
      stats.lastUpdateMs = u; stats.maxUpdateMs = Math.max(stats.maxUpdateMs, u); push(stats.updateMs, u);
      pendingSince = null;
    }
    document.getElementById("s-frame").textContent = stats.lastFrameMs.toFixed(1) + " ms";
    if (framingDue && !framingQueued) { framingQueued = true; setTimeout(frameTask, 0); }
    framingDue = false;
  }

  function push(arr, v) { arr.push(v); if (arr.length > 500) arr.shift(); }

  // A frame is asked for only when something changed (redraw): an idle page costs the
  // browser nothing (an endless requestAnimationFrame loop runs the renderer at 60 Hz).
  let frameAsked = false;
  function loop() {
    frameAsked = false;
    if (dirty) { dirty = false; render(); }
  }
  function redraw() {
    dirty = true;
    if (!frameAsked) { frameAsked = true; requestAnimationFrame(loop); }
  }

  // ------------------------------------------------------------------ data
  function applyReport(rep) {
    picture.apply(rep);
    if (rep.status === "DELETED" && selected === rep.id) { selected = null; details.hidden = true; }
  }

  // What the framing shows: every sub-point, impact and launch point, and the satellites
  // drawn that feed a live track (those looking at the picture; the others may be anywhere).
  function framedPoints() {
    const out = [];
    for (const t of tracks.values()) {
      if (t.rep.lat != null) out.push([t.rep.lat, t.rep.lon]);
      for (const e of [t.rep.impact, t.rep.launch]) if (e && e.lat != null) out.push([e.lat, e.lon]);
    }
    if (out.length) {
      for (const s of placedSatellites().values()) if (s.tracks.length) out.push([s.pos.lat, s.pos.lon]);
    }
    return out;
  }

  // Frame the picture at once (the user: reset, switch view).
  function centreOnTracks() {
    const fit = geo.frame(framedPoints(), FIT_ZOOM);
    if (!fit) return false;
    geo.apply(fit); view.fit = fit;
    return true;
  }

  // The automatic framing, in a task of its own after an update's frame is drawn (the
  // update shows its reports first): changed only if it shows the picture better than the
  // last framing (geo.differs), with the new view's land drawn ahead (geo.prepare), so
  // the next frame is one copy of the land.
  let framingDue = false, framingQueued = false;
  function frameTask() {
    framingQueued = false;
    const now = performance.now();
    if (!reframe(now)) return;
    const fit = geo.frame(framedPoints(), FIT_ZOOM);
    if (!fit) return;
    view.centred = true; framedAt = now;
    if (!geo.differs(fit, view.fit)) return;
    const { w, h } = size();
    geo.prepare(fit, w, h);
    geo.apply(fit); view.fit = fit; redraw();
  }

  // While following: frame again every FOLLOW_S, and at once when the picture outgrows the
  // frame (a new impact prediction far away, tracks flying out).
  function reframe(now) {
    if (!view.centred) return true;
    if (!view.follow) return false;
    if (now - framedAt > FOLLOW_S * 1000) return true;
    return !!view.fit && geo.spread(view.fit.c, framedPoints()) > view.fit.spread * 1.15 + 0.005;
  }

  function received(kind, data) {
    if (pendingSince === null) pendingSince = performance.now();
    stats.messages++;
    if (kind === "snapshot") {
      picture.clear();
      for (const rep of data.tracks) applyReport(rep);
      stats.reports += data.tracks.length;
      showSatellites(); showStatus(data.status);
    } else {
      for (const rep of data) applyReport(rep);
      stats.reports += data.length;
    }
    framingDue = true;
    if (selected) showDetails(selected);
    redraw();
  }

  function fmtTime(t) { return t == null ? "–" : new Date(t * 1000).toISOString().slice(11, 19) + "Z"; }

  function showStatus(s) {
    status = s || {};
    document.getElementById("s-rate").textContent = status.rate != null ? status.rate : "–";
    document.getElementById("s-live").textContent = tracks.size;
    document.getElementById("s-lag").textContent = status.lag == null ? "–" : (status.lag * 1000).toFixed(0) + " ms";
    document.getElementById("s-time").textContent = fmtTime(picture.latest());
    // An operator must see when the picture stops moving: no report for 5 s while tracks
    // are live, or the store more than 5 s behind the fusion service.
    const quiet = status.rate === 0 && tracks.size > 0, late = status.lag != null && status.lag > 5;
    document.getElementById("s-rate").parentElement.classList.toggle("warn", quiet);
    document.getElementById("s-lag").parentElement.classList.toggle("warn", late);
    document.getElementById("s-rate").parentElement.title = quiet ? "no report stored in the last 5 s" : "";
  }

  // The satellites list: those that fed a live track, or any track in the last 10 min.
  function showSatellites() {
    sensors = picture.satellites();
    document.getElementById("n-sats").textContent = sensors.length;
    const ul = document.getElementById("sats");
    ul.replaceChildren(...sensors.map((s) => {
      const li = document.createElement("li");
      li.dataset.sensor = s.id;
      li.innerHTML = `<b></b><span>${s.tracks.length} tracks · ${fmtTime(s.t)}</span>`;
      li.firstChild.textContent = s.id;
      li.addEventListener("mouseenter", () => { highlight = s.id; redraw(); });
      li.addEventListener("mouseleave", () => { highlight = null; redraw(); });
      return li;
    }));
  }

  function detailRows(r) {
    const rows = [
      ["status", r.status], ["phase", r.phase],
      ["altitude", r.alt == null ? "–" : (r.alt / 1000).toFixed(1) + " km"],
      ["speed", r.speed == null ? "–" : (r.speed / 1000).toFixed(2) + " km/s (inertial)"],
      ["position", `${r.lat.toFixed(3)}°, ${r.lon.toFixed(3)}°`],
      ["last update", fmtTime(r.t) + ` (rev ${r.rev}, ${r.updates} updates)`],
      ["satellites", r.sensors.length ? r.sensors.join(", ") : "none since last report"],
    ];
    if (r.impact) rows.push(["impact", `${r.impact.lat.toFixed(2)}°, ${r.impact.lon.toFixed(2)}° at ${fmtTime(r.impact.t)}`],
      ["impact 1σ", `${(r.impact.a / 1000).toFixed(1)} × ${(r.impact.b / 1000).toFixed(1)} km, ${r.impact.ori.toFixed(0)}°`]);
    if (r.launch) rows.push(["launch", `${r.launch.lat.toFixed(2)}°, ${r.launch.lon.toFixed(2)}° at ${fmtTime(r.launch.t)}`]);
    return rows;
  }

  function table(r) {
    const div = document.createElement("div");
    const title = document.createElement("div"); title.className = "title"; title.textContent = r.id;
    title.style.color = colour(r);
    const tbl = document.createElement("table");
    for (const [k, v] of detailRows(r)) {
      const tr = tbl.insertRow(); tr.insertCell().textContent = k; tr.insertCell().textContent = v;
    }
    div.append(title, tbl);
    return div;
  }

  function showDetails(id) {
    const t = tracks.get(id);
    if (!t) { details.hidden = true; return; }
    details.replaceChildren(table(t.rep)); details.hidden = false;
  }

  function nearest(x, y, points = draw.screen) {
    let best = null, bd = 12 * 12;
    for (const [sx, sy, id] of points) {
      const d = (sx - x) ** 2 + (sy - y) ** 2;
      if (d < bd) { bd = d; best = id; }
    }
    return best;
  }

  function satelliteTable(s) {
    const div = document.createElement("div");
    const title = document.createElement("div"); title.className = "title";
    title.textContent = `${s.id} · satellite`; title.style.color = SAT_COLOUR;
    const tbl = document.createElement("table");
    const rows = [
      ["sub-point", `${s.pos.lat.toFixed(2)}°, ${s.pos.lon.toFixed(2)}°`],
      ["altitude", s.pos.alt == null ? "–" : (s.pos.alt / 1000).toFixed(0) + " km"],
      ["as of", `${fmtTime(s.pos.t)} (its latest frame in a report)`],
      ["tracks fed", s.tracks.length ? s.tracks.join(", ") : "none live"],
    ];
    for (const [k, v] of rows) {
      const tr = tbl.insertRow(); tr.insertCell().textContent = k; tr.insertCell().textContent = v;
    }
    div.append(title, tbl);
    return div;
  }

  // ------------------------------------------------------------------ interaction
  let drag = null;
  canvas.addEventListener("mousedown", (e) => { drag = { x: e.clientX, y: e.clientY, moved: false }; canvas.classList.add("dragging"); });
  window.addEventListener("mouseup", (e) => {
    canvas.classList.remove("dragging");
    if (drag && !drag.moved) {
      const rect = canvas.getBoundingClientRect();
      selected = nearest(e.clientX - rect.left, e.clientY - rect.top);
      if (selected) showDetails(selected); else details.hidden = true;
      redraw();
    }
    drag = null;
  });
  canvas.addEventListener("mousemove", (e) => {
    const rect = canvas.getBoundingClientRect();
    const x = e.clientX - rect.left, y = e.clientY - rect.top;
    if (drag) {
      const dx = e.clientX - drag.x, dy = e.clientY - drag.y;
      if (Math.abs(dx) + Math.abs(dy) > 2) { drag.moved = true; view.follow = false; }
      const { w, h } = size();
      const k = view.mode === "globe" ? 1 / (globeRadius(w, h) * D2R) : 1 / flatScale(w, h);
      view.lon0 = wrap(view.lon0 - dx * k);
      view.lat0 = Math.max(-89, Math.min(89, view.lat0 + dy * k));
      drag.x = e.clientX; drag.y = e.clientY; redraw(); tip.hidden = true;
      return;
    }
    const id = nearest(x, y), sid = id ? null : nearest(x, y, draw.satScreen);
    const sat = sid && sensors.find((s) => s.id === sid);
    if (!id && !sat) { tip.hidden = true; return; }
    tip.replaceChildren(id ? table(tracks.get(id).rep) : satelliteTable(sat));
    tip.style.left = x + 16 + "px"; tip.style.top = y + 16 + "px"; tip.hidden = false;
  });
  canvas.addEventListener("mouseleave", () => { tip.hidden = true; });
  canvas.addEventListener("wheel", (e) => {
    e.preventDefault();
    view.follow = false;
    view.zoom = Math.max(0.5, Math.min(60, view.zoom * (e.deltaY < 0 ? 1.2 : 1 / 1.2)));
    redraw();
  }, { passive: false });
  function toggleView() {
    view.mode = view.mode === "globe" ? "flat" : "globe";
    if (view.follow) centreOnTracks();
    else if (view.mode === "flat" && view.zoom <= 1.2) view.lat0 = 0;
    document.getElementById("b-view").textContent = view.mode === "globe" ? "flat map" : "globe";
    tip.hidden = true; redraw();
  }
  function resetView() { view.zoom = 1; view.follow = true; centreOnTracks(); redraw(); }
  document.getElementById("b-view").addEventListener("click", toggleView);
  document.getElementById("b-reset").addEventListener("click", resetView);
  window.addEventListener("keydown", (e) => {
    if (e.key === "v" || e.key === "V") toggleView();
    if (e.key === "r" || e.key === "R") resetView();
  });
  window.addEventListener("resize", () => { redraw(); });

  // ------------------------------------------------------------------ start
  // The store's WebSocket (/live): binary messages, a snapshot then updates (wire.js);
  // on a drop, reconnect after RECONNECT_MS and start again from a new snapshot.
  const RECONNECT_MS = 1000;
  function connect() {
    const conn = document.getElementById("conn");
    const ws = new WebSocket((location.protocol === "https:" ? "wss://" : "ws://") + location.host + "/live");
    ws.binaryType = "arraybuffer";
    ws.onopen = () => { conn.textContent = "live"; conn.className = "conn on"; };
    ws.onclose = () => {
      conn.textContent = "reconnecting"; conn.className = "conn off";
      setTimeout(() => { window.tracklayerMap.source = connect(); }, RECONNECT_MS);
    };
    // An update's time (stats.updateMs) runs from the arrival of a message with reports
    // (decoding included) to its frame drawn; a status alone is not an update.
    ws.onmessage = (e) => {
      const t0 = performance.now(), m = wire.splitMessage(e.data);
      const reps = wire.decodeReports(m.reports), t1 = performance.now();
      if ((m.kind === "S" || reps.length) && pendingSince === null) {
        pendingSince = t0; part = { decode: 0, apply: 0 };
      }
      if (m.kind === "S") {
        const d = JSON.parse(m.text);
        for (const rep of reps) rep.trail = d.trails[rep.id] || [];
        d.tracks = reps;
        received("snapshot", d);
        return;
      }
      if (reps.length) { push(stats.decodeMs, t1 - t0); received("reports", reps); }
      const t2 = performance.now();
      showStatus(JSON.parse(m.text)); showSatellites(); redraw();
      if (part && reps.length) {
        part.decode += t1 - t0; part.apply += t2 - t1;
        part.status = (part.status || 0) + performance.now() - t2;
      }
    };
    return ws;
  }

  fetch("/static/land-110m.json").then((r) => r.json()).then((topo) => {
    geo.setLand(topo); redraw();
  });
  window.tracklayerMap = {
    tracks, view, stats, drawn,
    get sensors() { return sensors; }, get status() { return status; },
    get landRings() { return geo.landRings; },
    get backgrounds() { return geo.backgrounds; },
    // The background's colour [r, g, b, a] under (lat, lon) in the current view, or null
    // where it is not shown (tests: land against sea and lakes).
    backgroundAt(lat, lon) {
      const { w, h } = size(), [x, y, visible] = project(lat, lon, w, h), d = window.devicePixelRatio || 1;
      if (!visible || x < 0 || y < 0 || x >= w || y >= h) return null;
      return [...geo.background(w, h).getContext("2d").getImageData(Math.floor(x * d), Math.floor(y * d), 1, 1).data];
    },
    screenOf(id) { const p = draw.screen.find((q) => q[2] === id); return p ? [p[0], p[1]] : null; },
    toScreen(lat, lon) { const { w, h } = size(); return project(lat, lon, w, h); },
    satelliteScreenOf(id) { const p = draw.satScreen.find((q) => q[2] === id); return p ? [p[0], p[1]] : null; },
    setView(mode, zoom) {
      if (mode !== view.mode) toggleView();
      if (zoom) { view.zoom = zoom; view.follow = false; }
      redraw();
    },
    source: connect(),
  };
  redraw();
})();
