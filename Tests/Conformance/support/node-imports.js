// Our stand-in for the suites' node-imports.js (Debian ships mocha and ws, not chai):
// Node's own fetch and WebSocket from ws, and the few chai assertions the suites use.
import { createRequire } from "node:module";
import assert from "node:assert/strict";

// Debian installs ws under /usr/share/nodejs, which ES module resolution does not search.
const require = createRequire("/usr/share/nodejs/");
const WebSocket = require("ws");

function expect(actual) {
  const to = {
    eql: (expected) => assert.deepStrictEqual(actual, expected),
    startsWith: (prefix) => assert.ok(typeof actual === "string" && actual.startsWith(prefix), `${JSON.stringify(actual)} starts with ${prefix}`),
    be: {
      a: (type) => assert.equal(typeof actual, type),
      oneOf: (values) => assert.ok(values.some((v) => { try { assert.deepStrictEqual(actual, v); return true; } catch { return false; } }), `${JSON.stringify(actual)} is one of ${JSON.stringify(values)}`),
    },
    have: { all: { keys: (...keys) => assert.deepStrictEqual(Object.keys(actual).sort(), keys.flat().sort()) } },
  };
  return { to };
}

globalThis.WebSocket = WebSocket;
globalThis.chai = { expect };
