// tracklayer live map: the store's messages as they travel, decoded in the browser.
// A message (one binary WebSocket message, services/live_map/view.py message) is a kind
// byte ("S" snapshot, "U" update), a JSON text's length (uint32, little-endian), that
// text (UTF-8: the status, and in a snapshot the trails), then the reports as one
// serialized tracklayer.v1.ListTracksResponse (the reports' own protobuf bytes, field 1
// each): the store only frames bytes it has, the page does the rest (issue 16: the map
// must cost the store little). Field numbers from proto/tracklayer/v1/track.proto;
// unknown fields are skipped, so a newer store with more fields still decodes.
//
// Each report becomes the object the page draws (degrees, metres, m/s, seconds since the
// Unix epoch, UTC): id, rev, status and phase (enum names without prefix), t, lat, lon,
// alt, speed (the TEME velocity's norm), sensors, updates, emitted (or null), impact and
// launch ({lat, lon, t, a, b (1-sigma, m), ori (deg clockwise from north)}) when set, and
// placed: [{id, t, lat, lon, alt}] where the report placed each contributing satellite.
// Numbers that are not finite are null.
"use strict";

window.tracklayerWire = (function () {
  const PHASE = ["UNSPECIFIED", "BOOST", "MIDCOURSE", "REENTRY", "GLIDE"];
  const STATUS = ["UNSPECIFIED", "TENTATIVE", "CONFIRMED", "COASTING", "DELETED"];
  const utf8 = new TextDecoder();

  // A cursor over bytes b (DataView v) at p.
  function varint(r) {
    let x = 0, mul = 1, byte;
    do {
      byte = r.b[r.p++];
      x += (byte & 0x7f) * mul; mul *= 128;
    } while (byte & 0x80);
    return x;
  }
  function double(r) { const x = r.v.getFloat64(r.p, true); r.p += 8; return Number.isFinite(x) ? x : null; }
  // Ids are short ASCII: built directly (TextDecoder costs more per call than a raid's
  // 5,000 ids a second can afford); anything else through TextDecoder.
  function string(r) {
    const n = varint(r), b = r.b, end = r.p + n;
    if (n <= 32) {
      let s = "", i = r.p;
      for (; i < end && b[i] < 0x80; i++) s += String.fromCharCode(b[i]);
      if (i === end) { r.p = end; return s; }
    }
    const s = utf8.decode(b.subarray(r.p, end));
    r.p = end;
    return s;
  }
  function skip(r, wire) {
    if (wire === 0) varint(r);
    else if (wire === 1) r.p += 8;
    else if (wire === 2) { const n = varint(r); r.p += n; }  // not r.p += varint(r): r.p read first
    else if (wire === 5) r.p += 4;
    else throw new Error(`tracklayer wire: bad wire type ${wire} at byte ${r.p}`);
  }
  // Each message decoder reads fields up to byte `end` (plain loops: this runs for every
  // report of a 1,000-track raid once a second).
  function sub(r, read) { const n = varint(r), end = r.p + n; const out = read(r, end); r.p = end; return out; }

  function timestamp(r, end) {
    let s = 0, ns = 0;
    while (r.p < end) {
      const tag = varint(r);
      if (tag === 8) s = varint(r);         // 1: seconds (varint)
      else if (tag === 16) ns = varint(r);  // 2: nanos (varint)
      else skip(r, tag & 7);
    }
    return s + ns * 1e-9;
  }
  function speed(r, end) {  // a Vector3's norm
    let x = 0, y = 0, z = 0;
    while (r.p < end) {
      const tag = varint(r);
      if (tag === 9) x = double(r); else if (tag === 17) y = double(r);
      else if (tag === 25) z = double(r); else skip(r, tag & 7);
    }
    const v = Math.sqrt(x * x + y * y + z * z);
    return Number.isFinite(v) ? v : null;
  }
  function ellipse(r, end) {  // ImpactPrediction and LaunchEstimate: the same fields
    const e = { lat: 0, lon: 0, t: 0, a: 0, b: 0, ori: 0 };
    while (r.p < end) {
      const tag = varint(r);
      switch (tag) {
        case 9: e.lat = double(r); break;
        case 17: e.lon = double(r); break;
        case 26: e.t = sub(r, timestamp); break;
        case 33: e.a = double(r); break;
        case 41: e.b = double(r); break;
        case 49: e.ori = double(r); break;
        default: skip(r, tag & 7);
      }
    }
    return e;
  }
  function position(r, end) {  // SensorPosition
    const p = { id: "", t: 0, lat: 0, lon: 0, alt: 0 };
    while (r.p < end) {
      const tag = varint(r);
      switch (tag) {
        case 10: p.id = string(r); break;
        case 18: p.t = sub(r, timestamp); break;
        case 25: p.lat = double(r); break;
        case 33: p.lon = double(r); break;
        case 41: p.alt = double(r); break;
        default: skip(r, tag & 7);
      }
    }
    return p;
  }
  function report(r, end) {  // TrackReport (tag = field number << 3 | wire type)
    const rep = {
      id: "", rev: 0, status: "UNSPECIFIED", phase: "UNSPECIFIED", t: 0, lat: 0, lon: 0,
      alt: 0, speed: 0, sensors: [], updates: 0, emitted: null, placed: [],
    };
    while (r.p < end) {
      const tag = varint(r);
      switch (tag) {
        case 10: rep.id = string(r); break;                               // 1 track_id
        case 16: rep.rev = varint(r); break;                              // 2 revision
        case 24: rep.status = STATUS[varint(r)] || "UNSPECIFIED"; break;  // 3 status
        case 34: rep.t = sub(r, timestamp); break;                        // 4 time
        case 50: rep.speed = sub(r, speed); break;                        // 6 velocity_eci
        case 65: rep.lat = double(r); break;                              // 8 latitude_deg
        case 73: rep.lon = double(r); break;                              // 9 longitude_deg
        case 81: rep.alt = double(r); break;                              // 10 altitude_m
        case 88: rep.phase = PHASE[varint(r)] || "UNSPECIFIED"; break;    // 11 phase
        case 98: rep.impact = sub(r, ellipse); break;                     // 12 impact
        case 106: rep.launch = sub(r, ellipse); break;                    // 13 launch
        case 114: rep.sensors.push(string(r)); break;                     // 14 sensor_ids
        case 120: rep.updates = varint(r); break;                         // 15 update_count
        case 130: rep.emitted = sub(r, timestamp); break;                 // 16 emitted_at
        case 138: rep.placed.push(sub(r, position)); break;               // 17 sensor_positions
        default: skip(r, tag & 7);  // position_eci, covariance, fields added later
      }
    }
    return rep;
  }

  // A ListTracksResponse's bytes (Uint8Array) -> the reports, in order.
  function decodeReports(b) {
    const r = { b, v: new DataView(b.buffer, b.byteOffset, b.byteLength), p: 0 };
    const out = [];
    while (r.p < b.length) {
      const tag = varint(r);
      if (tag === 10) out.push(sub(r, report)); else skip(r, tag & 7);  // 1 tracks
    }
    return out;
  }

  // A message (ArrayBuffer) -> {kind: "S" | "U", text: its JSON text, reports: the
  // ListTracksResponse's bytes, not decoded yet}.
  function splitMessage(buf) {
    const b = new Uint8Array(buf);
    if (b.length < 5) throw new Error(`tracklayer wire: message of ${b.length} bytes`);
    const n = new DataView(buf).getUint32(1, true);
    if (5 + n > b.length) throw new Error(`tracklayer wire: text of ${n} bytes past the end`);
    return { kind: String.fromCharCode(b[0]), text: utf8.decode(b.subarray(5, 5 + n)), reports: b.subarray(5 + n) };
  }

  return { decodeReports, splitMessage };
})();
