// A table of requests to the admin app that pins its HTTP behaviour: routing, query and body parsing, validation,
// limits, read-only refusals, error shapes (test/unit/admin-http.test.ts). test/fixtures/admin-answers.json holds
// the answers fastify 5.12 gave to each, recorded with `answersOf` at commit ff720d0 (the last with the admin API
// on fastify) — status, content type, content length, and the body: an error's whole, a good one's keys — which
// the node:http app (src/admin/http.ts) must give exactly.
import type { HttpApp } from '../../src/admin/http.ts';

export interface AdminRequest {
  name: string;
  method?: 'GET' | 'HEAD' | 'POST' | 'PUT' | 'DELETE' | 'OPTIONS' | 'PATCH';
  url: string;
  payload?: unknown;
  headers?: Record<string, string>;
  /** Sent to the read-only app. */
  readOnly?: boolean;
}

const big = (n: number) => JSON.stringify({ networks: { x: 'a'.repeat(n) } });

export const REQUESTS: AdminRequest[] = [
  // Query validation (the routes with a schema).
  { name: 'diagnose without network', url: '/v1/diagnose' },
  { name: 'diagnose with an empty network', url: '/v1/diagnose?network=' },
  { name: 'diagnose of a peer', url: '/v1/diagnose?network=net&peer=node-b' },
  { name: 'diagnose with an unknown parameter', url: '/v1/diagnose?network=net&extra=1' },
  { name: 'diagnose with an over-long network', url: `/v1/diagnose?network=${'x'.repeat(201)}` },
  { name: 'diagnose with network twice', url: '/v1/diagnose?network=net&network=net' },
  { name: 'policy check without to', url: '/v1/policy/check?network=net&from=a' },
  { name: 'policy check', url: '/v1/policy/check?network=net&from=a&to=b&port=tcp/80' },
  { name: 'policy without network', url: '/v1/policy' },
  { name: 'policy', url: '/v1/policy?network=net' },
  { name: 'events after not a number', url: '/v1/events?after=x' },
  { name: 'events limit negative', url: '/v1/events?limit=-1' },
  { name: 'events after a fraction', url: '/v1/events?after=1.5' },
  { name: 'events follow not a boolean', url: '/v1/events?follow=yes' },
  { name: 'events limit over 1000', url: '/v1/events?limit=1001' },
  { name: 'events', url: '/v1/events?after=0&limit=5' },
  { name: 'events follow false', url: '/v1/events?follow=false&limit=1' },
  { name: 'events with an unknown parameter', url: '/v1/events?x=1' },
  { name: 'logs tail not a number', url: '/v1/workloads/w/logs?tail=abc' },
  { name: 'logs tail too large', url: '/v1/workloads/w/logs?tail=100001' },
  { name: 'logs of a workload (no runtime)', url: '/v1/workloads/w/logs?tail=5' },
  { name: 'paths with an unknown parameter', url: '/v1/paths?network=net&x=1' },
  { name: 'paths', url: '/v1/paths?network=net' },
  // Routes, methods, paths.
  { name: 'status', url: '/v1/status' },
  { name: 'status with a query', url: '/v1/status?x=1&%ZZ' },
  { name: 'status HEAD', method: 'HEAD', url: '/v1/status' },
  { name: 'status with a trailing slash', url: '/v1/status/' },
  { name: 'status with a double slash', url: '//v1/status' },
  { name: 'status POST', method: 'POST', url: '/v1/status' },
  { name: 'status OPTIONS', method: 'OPTIONS', url: '/v1/status' },
  { name: 'unknown route', url: '/v1/nope' },
  { name: 'root', url: '/' },
  { name: 'networks', url: '/v1/networks' },
  { name: 'a network', url: '/v1/networks/net' },
  { name: 'an unknown network', url: '/v1/networks/nope' },
  { name: 'a network name with an encoded slash', url: '/v1/networks/net%2Fx' },
  { name: 'a network name with a bad escape', url: '/v1/networks/%ZZ' },
  { name: 'a network name over 256 characters', url: `/v1/networks/${'n'.repeat(257)}` },
  { name: 'a network name of 256 characters', url: `/v1/networks/${'n'.repeat(256)}` },
  { name: 'dns of a network', url: '/v1/networks/net/dns' },
  { name: 'workloads', url: '/v1/workloads' },
  { name: 'volumes', url: '/v1/volumes' },
  { name: 'metrics', url: '/v1/metrics' },
  { name: 'candidates', url: '/v1/candidates' },
  { name: 'candidates read-only', url: '/v1/candidates', readOnly: true },
  { name: 'paths read-only', url: '/v1/paths', readOnly: true },
  // Bodies.
  { name: 'blueprint without part', method: 'POST', url: '/v1/blueprints', payload: { signed: {} } },
  { name: 'blueprint with an extra field', method: 'POST', url: '/v1/blueprints', payload: { signed: {}, part: {}, extra: 1 } },
  { name: 'blueprint as an array', method: 'POST', url: '/v1/blueprints', payload: [] },
  { name: 'blueprint of empty objects', method: 'POST', url: '/v1/blueprints', payload: { signed: {}, part: {} } },
  { name: 'blueprint not JSON', method: 'POST', url: '/v1/blueprints', payload: '{"signed":', headers: { 'content-type': 'application/json' } },
  { name: 'blueprint empty JSON body', method: 'POST', url: '/v1/blueprints', payload: '', headers: { 'content-type': 'application/json' } },
  { name: 'blueprint as text', method: 'POST', url: '/v1/blueprints', payload: '{"signed":{},"part":{}}', headers: { 'content-type': 'text/plain' } },
  { name: 'blueprint as a form', method: 'POST', url: '/v1/blueprints', payload: 'a=1', headers: { 'content-type': 'application/x-www-form-urlencoded' } },
  { name: 'blueprint without a content type', method: 'POST', url: '/v1/blueprints', payload: '{"signed":{},"part":{}}' },
  { name: 'blueprint JSON with a charset', method: 'POST', url: '/v1/blueprints', payload: '{"signed":{},"part":{}}', headers: { 'content-type': 'application/json; charset=utf-8' } },
  { name: 'blueprint JSON in capitals', method: 'POST', url: '/v1/blueprints', payload: '{"signed":{},"part":{}}', headers: { 'content-type': 'Application/JSON' } },
  { name: 'blueprint with __proto__', method: 'POST', url: '/v1/blueprints', payload: '{"signed":{"__proto__":{"x":1}},"part":{}}', headers: { 'content-type': 'application/json' } },
  { name: 'blueprint with constructor.prototype', method: 'POST', url: '/v1/blueprints', payload: '{"signed":{"constructor":{"prototype":{"x":1}}},"part":{}}', headers: { 'content-type': 'application/json' } },
  { name: 'blueprint with a constructor field', method: 'POST', url: '/v1/blueprints', payload: '{"signed":{"constructor":1},"part":{}}', headers: { 'content-type': 'application/json' } },
  { name: 'blueprint over the body limit', method: 'POST', url: '/v1/blueprints', payload: big(300 * 1024), headers: { 'content-type': 'application/json' } },
  { name: 'blueprint read-only', method: 'POST', url: '/v1/blueprints', payload: { signed: {}, part: {} }, readOnly: true },
  { name: 'remove an unknown blueprint', method: 'DELETE', url: '/v1/blueprints/acme/nope' },
  { name: 'remove read-only', method: 'DELETE', url: '/v1/blueprints/acme/nope', readOnly: true },
  { name: 'candidates as an array', method: 'PUT', url: '/v1/candidates', payload: [1] },
  { name: 'candidates', method: 'PUT', url: '/v1/candidates', payload: { networks: {} } },
  { name: 'candidates near the route limit', method: 'PUT', url: '/v1/candidates', payload: big(200 * 1024), headers: { 'content-type': 'application/json' } },
  { name: 'candidates over the route limit', method: 'PUT', url: '/v1/candidates', payload: big(257 * 1024), headers: { 'content-type': 'application/json' } },
  { name: 'reconcile', method: 'POST', url: '/v1/reconcile' },
  { name: 'reconcile with an empty JSON body', method: 'POST', url: '/v1/reconcile', payload: '', headers: { 'content-type': 'application/json' } },
  { name: 'reconcile with a JSON body', method: 'POST', url: '/v1/reconcile', payload: { x: 1 } },
  { name: 'reconcile read-only', method: 'POST', url: '/v1/reconcile', readOnly: true },
  { name: 'status PATCH', method: 'PATCH', url: '/v1/status', payload: { x: 1 } },
  { name: 'an empty network name', url: '/v1/networks/' },
  { name: 'a path with an escaped letter', url: '/v1/st%61tus' },
  { name: 'a network name with a slash', url: '/v1/networks/a/b' },
  { name: 'status with a JSON body', url: '/v1/status', payload: { x: 1 } },
  { name: 'remove with a JSON body', method: 'DELETE', url: '/v1/blueprints/acme/nope', payload: { x: 1 } },
  { name: 'HEAD of an unknown route', method: 'HEAD', url: '/v1/nope' },
  { name: 'reconcile with a text body', method: 'POST', url: '/v1/reconcile', payload: 'x', headers: { 'content-type': 'text/plain' } },
  { name: 'diagnose with a second empty network', url: '/v1/diagnose?network=net&network=' },
  { name: 'events limit twice', url: '/v1/events?limit=5&limit=6' },
  { name: 'events after with a plus', url: '/v1/events?after=+5' },
  { name: 'events follow 1', url: '/v1/events?follow=1&limit=1' },
  { name: 'events follow true in capitals', url: '/v1/events?follow=TRUE' },
  { name: 'events limit with spaces', url: '/v1/events?limit=%205' },
  { name: 'policy with a plus in the network', url: '/v1/policy?network=a+b' },
];

export interface RecordedAnswer {
  name: string;
  status: number;
  contentType: string | null;
  body: unknown;
  contentLength: string | null;
}

/** Each request's answer from `app` (`ro` for the read-only ones), in the recorded form. */
export async function answersOf(app: Pick<HttpApp, 'inject'>, ro: Pick<HttpApp, 'inject'>): Promise<RecordedAnswer[]> {
  const out: RecordedAnswer[] = [];
  for (const r of REQUESTS) {
    const res = await (r.readOnly ? ro : app).inject({ method: r.method ?? 'GET', url: r.url, payload: r.payload, headers: r.headers });
    const ct = String(res.headers['content-type'] ?? '');
    let body: unknown = res.body;
    if (ct.startsWith('application/json') && res.body.length) body = JSON.parse(res.body);
    // A good answer by its keys (its values change from run to run), an error whole.
    if (res.statusCode < 400) body = body && typeof body === 'object' ? Object.keys(body).sort() : typeof body === 'string' ? (body.length ? 'text' : '') : body;
    const len = res.headers['content-length'];
    out.push({ name: r.name, status: res.statusCode, contentType: ct || null, body, contentLength: len === undefined ? null : String(len) });
  }
  return out;
}
