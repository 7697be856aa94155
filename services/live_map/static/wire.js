// tracklayer live map: the store's reports as they travel, decoded in the browser.
// An event's reports are one serialized tracklayer.v1.ListTracksResponse (the reports'
// own protobuf bytes, field 1 each) in base64 (services/live_map/view.py reports_b64):
// the store only serializes, the page does the rest (issue 16: the map must cost the
// store little). Field numbers from proto/tracklayer/v1/track.proto; unknown fields are
// skipped, so a newer store with more fields still decodes.
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

  function bytesOf(b64) {
    if (Uint8Array.fromBase64) return Uint8Array.fromBase64(b64);
    const s = atob(b64), out = new Uint8Array(s.length);
    for (let i = 0; i < s.length; i++) out[i] = s.charCodeAt(i);
    return out;
  }

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
  function string(r) { const n = varint(r), s = utf8.decode(r.b.subarray(r.p, r.p + n)); r.p += n; return s; }
  function skip(r, wire) {
    if (wire === 0) varint(r);
    else if (wire === 1) r.p += 8;
    else if (wire === 2) { const n = varint(r); r.p += n; }  // not r.p += varint(r): r.p read first
    else if (wire === 5) r.p += 4;
    else throw new Error(`tracklayer wire: bad wire type ${wire} at byte ${r.p}`);
  }
  // Calls field(number, wire) for each field of the message that ends at byte `end`.
  function fields(r, end, field) {
    while (r.p < end) {
      const tag = varint(r);
      if (!field(tag >>> 3, tag & 7)) skip(r, tag & 7);
    }
  }
  function sub(r, read) { const n = varint(r), end = r.p + n; const out = read(r, end); r.p = end; return out; }

  function timestamp(r, end) {
    let s = 0, ns = 0;
    fields(r, end, (f, w) => {
      if (f === 1 && w === 0) s = varint(r);
      else if (f === 2 && w === 0) ns = varint(r);
      else return false;
      return true;
    });
    return s + ns * 1e-9;
  }
  function vector(r, end) {
    const out = [0, 0, 0];
    fields(r, end, (f, w) => {
      if (f >= 1 && f <= 3 && w === 1) out[f - 1] = double(r);
      else return false;
      return true;
    });
    return out;
  }
  function ellipse(r, end) {
    const e = { lat: 0, lon: 0, t: 0, a: 0, b: 0, ori: 0 };
    fields(r, end, (f, w) => {
      if (w === 1 && f === 1) e.lat = double(r);
      else if (w === 1 && f === 2) e.lon = double(r);
      else if (w === 2 && f === 3) e.t = sub(r, timestamp);
      else if (w === 1 && f === 4) e.a = double(r);
      else if (w === 1 && f === 5) e.b = double(r);
      else if (w === 1 && f === 6) e.ori = double(r);
      else return false;
      return true;
    });
    return e;
  }
  function position(r, end) {
    const p = { id: "", t: 0, lat: 0, lon: 0, alt: 0 };
    fields(r, end, (f, w) => {
      if (w === 2 && f === 1) p.id = string(r);
      else if (w === 2 && f === 2) p.t = sub(r, timestamp);
      else if (w === 1 && f === 3) p.lat = double(r);
      else if (w === 1 && f === 4) p.lon = double(r);
      else if (w === 1 && f === 5) p.alt = double(r);
      else return false;
      return true;
    });
    return p;
  }
  function report(r, end) {
    const rep = {
      id: "", rev: 0, status: "UNSPECIFIED", phase: "UNSPECIFIED", t: 0, lat: 0, lon: 0,
      alt: 0, speed: 0, sensors: [], updates: 0, emitted: null, placed: [],
    };
    fields(r, end, (f, w) => {
      switch (w * 100 + f) {
        case 201: rep.id = string(r); break;
        case 2: rep.rev = varint(r); break;
        case 3: rep.status = STATUS[varint(r)] || "UNSPECIFIED"; break;
        case 204: rep.t = sub(r, timestamp); break;
        case 206: {
          const [x, y, z] = sub(r, vector);
          const s = Math.sqrt(x * x + y * y + z * z);
          rep.speed = Number.isFinite(s) ? s : null;
          break;
        }
        case 108: rep.lat = double(r); break;
        case 109: rep.lon = double(r); break;
        case 110: rep.alt = double(r); break;
        case 11: rep.phase = PHASE[varint(r)] || "UNSPECIFIED"; break;
        case 212: rep.impact = sub(r, ellipse); break;
        case 213: rep.launch = sub(r, ellipse); break;
        case 214: rep.sensors.push(string(r)); break;
        case 15: rep.updates = varint(r); break;
        case 216: rep.emitted = sub(r, timestamp); break;
        case 217: rep.placed.push(sub(r, position)); break;
        default: return false;
      }
      return true;
    });
    return rep;
  }

  // base64 of a ListTracksResponse -> the reports, in order.
  function decodeReports(b64) {
    const b = bytesOf(b64);
    const r = { b, v: new DataView(b.buffer, b.byteOffset, b.byteLength), p: 0 };
    const out = [];
    fields(r, b.length, (f, w) => {
      if (f === 1 && w === 2) out.push(sub(r, report));
      else return false;
      return true;
    });
    return out;
  }

  return { decodeReports };
})();
