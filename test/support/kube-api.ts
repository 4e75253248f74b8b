import { writeFileSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';

/**
 * A STAND-IN for the Kubernetes API server: the one replayed part of the `uproxy sync` tests
 * (issue 18 allows exactly this stand-in; everything else in them is real). It serves what the
 * controller asks of a real API server, over plain HTTP on 127.0.0.1, for one namespace:
 *
 * - `GET /apis/discovery.k8s.io/v1/namespaces/NS/endpointslices?labelSelector=K=V` lists the
 *   EndpointSlices with that label, with the list's `metadata.resourceVersion`;
 * - the same with `watch=true` (or `1`) and `resourceVersion=RV` streams newline-delimited JSON
 *   watch events (ADDED, MODIFIED, DELETED, and BOOKMARK with `allowWatchBookmarks=true`) after
 *   RV: first those it has kept since RV, then each change as the test makes it, on one chunked
 *   response that stays open;
 * - a watch from a resourceVersion older than the last `compact()` is answered as the real API
 *   answers one whose history etcd compacted away: 200 and a single ERROR event holding a
 *   Status with code 410 (reason Expired), then the end of the stream; or, with
 *   `goneAs = 'status'`, an HTTP 410 with that Status as the body.
 *
 * The test drives it: `putSlice`/`deleteSlice` change the objects (and notify open watches),
 * `dropWatches` cuts every open watch connection without ending its body, `cutNextEvent` cuts
 * them halfway through the next event's line, `pauseWatches` holds events back from open watches
 * (a stalled connection), and `refuseWatches` answers new watches 503. Every request must carry
 * the kubeconfig's bearer token, so a controller that did not use the kubeconfig gets 401.
 */

export const KUBE_TOKEN = 'stand-in-bearer-token';

export interface StandInEndpoint {
  /** The pod's name: the endpoint's targetRef. */
  pod: string;
  ip: string;
  ready?: boolean;
  serving?: boolean;
  terminating?: boolean;
}

export interface StandInSlice {
  name: string;
  service: string;
  port: number;
  endpoints: StandInEndpoint[];
}

type EventType = 'ADDED' | 'MODIFIED' | 'DELETED' | 'BOOKMARK';
interface KeptEvent {
  rv: number;
  type: EventType;
  object: SliceObject;
}
interface SliceObject {
  apiVersion: 'discovery.k8s.io/v1';
  kind: 'EndpointSlice';
  metadata: { name: string; namespace: string; labels: Record<string, string>; resourceVersion: string };
  addressType: 'IPv4';
  ports: { name: string; port: number; protocol: 'TCP' }[];
  endpoints: { addresses: string[]; conditions: { ready: boolean; serving: boolean; terminating: boolean }; targetRef: { kind: 'Pod'; name: string; namespace: string } }[];
}
interface OpenWatch {
  res: http.ServerResponse;
  selector: Record<string, string>;
  bookmarks: boolean;
}

export interface WatchRequest {
  resourceVersion: string;
  labelSelector: string;
  allowWatchBookmarks: boolean;
}

export class KubeApiStandIn {
  /** How a watch from a compacted resourceVersion is refused: an ERROR event (the API server's way) or HTTP 410. */
  goneAs: 'event' | 'status' = 'event';
  /** Every list request's label selector, in order: a relist shows up here. */
  readonly lists: string[] = [];
  /** Every watch request, in order. */
  readonly watches: WatchRequest[] = [];

  private readonly server = http.createServer((req, res) => this.handle(req, res));
  private readonly slices = new Map<string, SliceObject>();
  private readonly history: KeptEvent[] = [];
  private readonly open = new Set<OpenWatch>();
  private rv = 100;
  private compactedAt = 0;
  private paused = false;
  private refusing = false;
  private cutting = false;

  constructor(readonly namespace: string) {}

  async start(): Promise<void> {
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve));
  }

  get url(): string {
    return `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  /** A kubeconfig whose current context is this stand-in, with a bearer token (a wrong one: 401s); returns its path. */
  writeKubeconfig(dir: string, token = KUBE_TOKEN): string {
    const file = join(dir, token === KUBE_TOKEN ? 'kubeconfig' : 'kubeconfig-wrong-token');
    // JSON is YAML: client-node reads it as a kubeconfig. It refuses a plain-HTTP server unless
    // the cluster skips TLS verification, which has nothing to verify here.
    writeFileSync(file, JSON.stringify({
      apiVersion: 'v1',
      kind: 'Config',
      clusters: [{ name: 'stand-in', cluster: { server: this.url, 'insecure-skip-tls-verify': true } }],
      users: [{ name: 'tester', user: { token } }],
      contexts: [{ name: 'stand-in', context: { cluster: 'stand-in', user: 'tester', namespace: this.namespace } }],
      'current-context': 'stand-in',
    }));
    return file;
  }

  /** Creates or replaces a slice (ADDED or MODIFIED to the open watches). */
  putSlice(slice: StandInSlice): void {
    const object: SliceObject = {
      apiVersion: 'discovery.k8s.io/v1',
      kind: 'EndpointSlice',
      metadata: { name: slice.name, namespace: this.namespace, labels: { 'kubernetes.io/service-name': slice.service }, resourceVersion: String(++this.rv) },
      addressType: 'IPv4',
      ports: [{ name: 'http', port: slice.port, protocol: 'TCP' }],
      endpoints: slice.endpoints.map((e) => ({
        addresses: [e.ip],
        conditions: { ready: e.ready ?? true, serving: e.serving ?? e.ready ?? true, terminating: e.terminating ?? false },
        targetRef: { kind: 'Pod', name: e.pod, namespace: this.namespace },
      })),
    };
    const type = this.slices.has(slice.name) ? 'MODIFIED' : 'ADDED';
    this.slices.set(slice.name, object);
    this.emit({ rv: this.rv, type, object });
  }

  deleteSlice(name: string): void {
    const old = this.slices.get(name);
    if (!old) throw new Error(`no slice ${name}`);
    this.slices.delete(name);
    this.emit({ rv: ++this.rv, type: 'DELETED', object: { ...old, metadata: { ...old.metadata, resourceVersion: String(this.rv) } } });
  }

  /**
   * A BOOKMARK event, to the open watches that asked for them (allowWatchBookmarks): no change,
   * only a newer resourceVersion to watch from. Returns that resourceVersion.
   */
  bookmark(): string {
    const object = { apiVersion: 'discovery.k8s.io/v1', kind: 'EndpointSlice', metadata: { resourceVersion: String(++this.rv) } } as SliceObject;
    for (const w of this.open) if (w.bookmarks && !this.paused) this.send(w, { type: 'BOOKMARK', object });
    return object.metadata.resourceVersion;
  }

  /** Forgets every event so far, as etcd compaction does: a watch from an older resourceVersion is 410 Gone. */
  compact(): void {
    this.compactedAt = this.rv;
    this.history.length = 0;
  }

  /** Open watches get no events until resumed (they are still kept for a watch from an older resourceVersion). */
  pauseWatches(paused: boolean): void {
    this.paused = paused;
  }

  /** New watches are answered 503 while on (an API server that is restarting). */
  refuseWatches(refusing: boolean): void {
    this.refusing = refusing;
  }

  /** Cuts every open watch connection mid-stream: the socket is destroyed, the chunked body never ends. */
  dropWatches(): void {
    for (const w of this.open) w.res.socket?.destroy();
    this.open.clear();
  }

  /** The next event reaches the open watches only halfway through its line, then their connections are cut. */
  cutNextEvent(): void {
    this.cutting = true;
  }

  openWatches(): number {
    return this.open.size;
  }

  async close(): Promise<void> {
    this.dropWatches();
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private emit(event: KeptEvent): void {
    this.history.push(event);
    if (this.paused) return;
    const line = `${JSON.stringify({ type: event.type, object: event.object })}\n`;
    for (const w of this.open) {
      if (!matches(event.object, w.selector)) continue;
      if (this.cutting) {
        w.res.write(line.slice(0, Math.floor(line.length / 2)), () => w.res.socket?.destroy());
        this.open.delete(w);
      } else {
        w.res.write(line);
      }
    }
    this.cutting = false;
  }

  private send(w: OpenWatch, event: { type: EventType; object: SliceObject }): void {
    w.res.write(`${JSON.stringify(event)}\n`);
  }

  private handle(req: http.IncomingMessage, res: http.ServerResponse): void {
    const url = new URL(req.url ?? '/', 'http://stand-in');
    if (req.headers.authorization !== `Bearer ${KUBE_TOKEN}`) return status(res, 401, 'Unauthorized', 'Unauthorized');
    if (req.method !== 'GET' || url.pathname !== `/apis/discovery.k8s.io/v1/namespaces/${this.namespace}/endpointslices`) {
      return status(res, 404, 'NotFound', `the stand-in serves only EndpointSlices in namespace ${this.namespace}, not ${req.method} ${url.pathname}`);
    }
    const labelSelector = url.searchParams.get('labelSelector') ?? '';
    const selector = parseSelector(labelSelector);
    const watch = url.searchParams.get('watch');
    if (watch !== 'true' && watch !== '1') {
      this.lists.push(labelSelector);
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({
        apiVersion: 'discovery.k8s.io/v1',
        kind: 'EndpointSliceList',
        metadata: { resourceVersion: String(this.rv) },
        items: [...this.slices.values()].filter((s) => matches(s, selector)),
      }));
      return;
    }
    const resourceVersion = url.searchParams.get('resourceVersion') ?? '';
    const bookmarks = url.searchParams.get('allowWatchBookmarks') === 'true';
    this.watches.push({ resourceVersion, labelSelector, allowWatchBookmarks: bookmarks });
    if (this.refusing) return status(res, 503, 'ServiceUnavailable', 'the stand-in refuses watches for now');
    const from = Number(resourceVersion);
    if (resourceVersion === '' || !Number.isInteger(from)) {
      return status(res, 400, 'BadRequest', 'the stand-in serves watches from a resourceVersion only, as a list+watch client makes them');
    }
    if (from < this.compactedAt) {
      const gone = { kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', message: `too old resource version: ${from} (${this.compactedAt})`, reason: 'Expired', code: 410 };
      if (this.goneAs === 'status') {
        res.writeHead(410, { 'content-type': 'application/json' });
        res.end(JSON.stringify(gone));
      } else {
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(`${JSON.stringify({ type: 'ERROR', object: gone })}\n`);
      }
      return;
    }
    res.writeHead(200, { 'content-type': 'application/json' });
    res.flushHeaders();
    const w: OpenWatch = { res, selector, bookmarks };
    this.open.add(w);
    res.on('close', () => this.open.delete(w));
    if (this.paused) return;
    for (const e of this.history) if (e.rv > from && matches(e.object, selector)) this.send(w, e);
  }
}

export async function startKubeApi(namespace: string): Promise<KubeApiStandIn> {
  const api = new KubeApiStandIn(namespace);
  await api.start();
  return api;
}

/** `k=v,k2=v2`: the equality-based selectors a list+watch of one Service's slices uses. */
function parseSelector(text: string): Record<string, string> {
  const selector: Record<string, string> = {};
  for (const part of text.split(',').filter(Boolean)) {
    const [key, value] = part.split('=');
    selector[key!] = value ?? '';
  }
  return selector;
}

function matches(slice: SliceObject, selector: Record<string, string>): boolean {
  return Object.entries(selector).every(([k, v]) => slice.metadata.labels[k] === v);
}

function status(res: http.ServerResponse, code: number, reason: string, message: string): void {
  res.writeHead(code, { 'content-type': 'application/json' });
  res.end(JSON.stringify({ kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', message, reason, code }));
}
