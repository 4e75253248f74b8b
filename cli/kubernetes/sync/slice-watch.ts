/**
 * A Service's EndpointSlices, listed and then watched with client-node's ListWatch, which keeps
 * the objects and, on its own: watches from the resourceVersion of the list and of each event;
 * starts a new watch from the last resourceVersion when the server ends one cleanly; and relists
 * (firing delete callbacks for what vanished meanwhile) when a watch is answered `410 Gone`,
 * either as HTTP 410 or as an ERROR event with a Status of code 410 followed by the end of the
 * stream. It does not retry anything else: on a failed list, a refused watch or a connection cut
 * mid-stream it reports an error and stops. This module adds what it lacks: it starts it again
 * (from the last resourceVersion it kept, else with a list), waits a growing backoff before each
 * list or watch that follows a failure or a watch that ended without delivering anything, asks
 * for bookmarks, and says whether a watch is established now, for /healthz.
 */
import { DiscoveryV1Api, ListWatch, Watch, type KubeConfig, type V1EndpointSlice, type V1EndpointSliceList } from '@kubernetes/client-node';
import { Backoff } from './backoff.js';
import type { Log } from './log.js';

export interface SliceTarget {
  namespace: string;
  service: string;
}

/** What a pass of the controller reads. */
export interface SliceSource {
  /** True once a first list has been taken in: before it, an empty cache means nothing. */
  readonly listed: boolean;
  slices(): readonly V1EndpointSlice[];
}

/** The first retry's wait, and the longest. */
const RETRY_FIRST_MS = 250;
const RETRY_MAX_MS = 30_000;
/** A watch that delivered events or lasted this long was a working one: what follows it starts the backoff afresh. */
const STEADY_WATCH_MS = 10_000;

/** What ObservedWatch tells its owner. */
interface WatchObserver {
  /** Sleeps the backoff due before a list or watch; false when stopped meanwhile. */
  beforeConnect(): Promise<boolean>;
  established(resourceVersion: string): void;
  /** A watch's stream ended: `error` null when the server closed it; `worked`: it delivered events or lasted. */
  ended(error: unknown, worked: boolean): void;
  /** An ERROR event in a watch stream: its Status object. */
  errorEvent(status: { code?: number; message?: string }): void;
}

export class EndpointSliceWatch implements SliceSource, WatchObserver {
  listed = false;
  /** A watch request was answered 200 and its stream has not ended. */
  watching = false;
  /** Why there is no watch now (undefined while watching). */
  problem: string | undefined = 'not watching yet';

  private readonly informer: ListWatch<V1EndpointSlice>;
  private readonly backoff = new Backoff(RETRY_FIRST_MS, RETRY_MAX_MS);
  private pauseMs = 0;
  private stopped = false;
  /** The next established watch is logged: the first, and each after a failure or an expiry. */
  private announce = true;
  private pauseTimer: NodeJS.Timeout | undefined;

  constructor(
    kc: KubeConfig,
    private readonly target: SliceTarget,
    private readonly log: Log,
    /** Called when the slices may have changed. */
    private readonly changed: () => void,
  ) {
    const api = kc.makeApiClient(DiscoveryV1Api);
    const labelSelector = `kubernetes.io/service-name=${target.service}`;
    const path = `/apis/discovery.k8s.io/v1/namespaces/${encodeURIComponent(target.namespace)}/endpointslices`;
    this.informer = new ListWatch(path, new ObservedWatch(kc, this), () => this.list(api, labelSelector), false, labelSelector);
    this.informer.on('change', () => changed());
    this.informer.on('error', (error: unknown) => this.failed(error));
  }

  start(): void {
    this.stopped = false;
    this.informer.start().catch((error: unknown) => this.failed(error));
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.pauseTimer);
    await this.informer.stop();
  }

  slices(): readonly V1EndpointSlice[] {
    return this.informer.list(this.target.namespace);
  }

  async beforeConnect(): Promise<boolean> {
    if (this.pauseMs > 0) {
      await new Promise<void>((resolve) => (this.pauseTimer = setTimeout(resolve, this.pauseMs)));
      this.pauseMs = 0;
    }
    return !this.stopped;
  }

  established(resourceVersion: string): void {
    if (this.announce) this.log('info', 'watch_started', { namespace: this.target.namespace, service: this.target.service, resource_version: resourceVersion });
    this.announce = false;
    this.watching = true;
    this.problem = undefined;
  }

  ended(error: unknown, worked: boolean): void {
    this.watching = false;
    if (worked) this.backoff.reset();
    if (isGone(error)) {
      this.expired();
    } else if (error !== null && error !== undefined) {
      // ListWatch reports it as an error next: `failed` takes it from there.
      return;
    }
    // The API server ends every watch after a while (minutes): a routine end is not logged.
    this.problem ??= 'the watch ended; watching again';
    this.announce ||= !worked;
    this.pauseMs = worked ? 0 : this.backoff.next();
  }

  errorEvent(status: { code?: number; message?: string }): void {
    if (status.code === 410) this.expired();
    else this.log('warn', 'watch_error_event', { code: status.code, message: status.message });
  }

  private expired(): void {
    this.announce = true;
    this.problem = 'the watch\'s resourceVersion expired (410 Gone); listing again';
    this.log('info', 'watch_expired', { reason: '410 Gone', next: 'relist' });
  }

  private async list(api: DiscoveryV1Api, labelSelector: string): Promise<V1EndpointSliceList> {
    // Stopped while waiting: ListWatch reports the error, which a stopped watch ignores.
    if (!(await this.beforeConnect())) throw new Error('stopped');
    const list = await api.listNamespacedEndpointSlice({ namespace: this.target.namespace, labelSelector });
    this.log('info', 'slices_listed', { namespace: this.target.namespace, service: this.target.service, slices: list.items.length, resource_version: list.metadata?.resourceVersion });
    // ListWatch takes the items in once this resolves; a pass must see them, changed or not.
    setImmediate(() => {
      this.listed = true;
      this.changed();
    });
    return list;
  }

  /** A failed list or watch: ListWatch has stopped, so start it again after the backoff. */
  private failed(error: unknown): void {
    this.watching = false;
    if (this.stopped) return;
    this.announce = true;
    this.problem = kubeErrorText(error, this.target);
    this.pauseMs = this.backoff.next();
    this.log('warn', 'watch_failed', { error: this.problem, retry_in_ms: this.pauseMs });
    setImmediate(() => {
      if (!this.stopped) this.informer.start().catch((e: unknown) => this.failed(e));
    });
  }
}

/**
 * client-node's Watch, telling its EndpointSliceWatch when a watch is established and when it
 * ends, and holding each new watch back by the backoff due.
 */
class ObservedWatch extends Watch {
  constructor(
    kc: KubeConfig,
    private readonly owner: WatchObserver,
  ) {
    super(kc);
  }

  override async watch(
    path: string,
    query: Record<string, string | number | boolean | undefined>,
    callback: (phase: string, apiObj: any, watchObj?: any) => void,
    done: (err: any) => void,
  ): Promise<AbortController> {
    // Stopped while waiting: no watch, and ListWatch, told nothing, starts none either.
    if (!(await this.owner.beforeConnect())) return new AbortController();
    const started = Date.now();
    let delivered = false;
    let ended = false;
    const end = (error: unknown): void => {
      if (ended) return;
      ended = true;
      this.owner.ended(error, delivered || Date.now() - started >= STEADY_WATCH_MS);
      done(error);
    };
    const observe = (phase: string, object: any, raw?: any): void => {
      if (phase === 'ERROR') this.owner.errorEvent(object ?? {});
      else delivered = true;
      callback(phase, object, raw);
    };
    try {
      // Bookmarks keep the resourceVersion recent while the slices do not change, so a watch
      // cut later starts again from there rather than meeting 410 and a relist.
      const controller = await super.watch(path, { ...query, allowWatchBookmarks: true }, observe, end);
      if (!ended) this.owner.established(String(query.resourceVersion ?? ''));
      return controller;
    } catch (error) {
      // Credentials are applied before Watch's own error handling starts (an exec plugin that
      // fails, a token file that is missing): end the watch as Watch ends a failed one.
      end(error);
      return new AbortController();
    }
  }
}

function isGone(error: unknown): boolean {
  const e = error as { statusCode?: number; code?: number } | null | undefined;
  return e?.statusCode === 410 || e?.code === 410;
}

/**
 * A Kubernetes error in one line: client-node's ApiException message holds the whole body and
 * the response headers, so the status code and the API's own message are taken from it instead.
 */
function kubeErrorText(error: unknown, target: SliceTarget): string {
  const e = error as { statusCode?: number; code?: unknown; body?: unknown; message?: string } | undefined;
  const status = e?.statusCode ?? (typeof e?.code === 'number' ? e.code : undefined);
  if (e?.code === 'ERR_STREAM_PREMATURE_CLOSE') return 'the watch connection was cut mid-stream';
  if (status === undefined) return e?.message ?? String(error);
  let message = '';
  try {
    const body = typeof e?.body === 'string' ? (JSON.parse(e.body) as { message?: string }) : (e?.body as { message?: string } | undefined);
    message = body?.message ?? '';
  } catch {
    // A body that is not a Status: the code says enough.
  }
  if (status === 401) return `the Kubernetes API refused the credentials (401)${message ? `: ${message}` : ''}; check the kubeconfig or the service account token`;
  if (status === 403) {
    return `the Kubernetes API forbids it (403)${message ? `: ${message}` : ''}; the account needs get, list and watch on endpointslices.discovery.k8s.io in namespace ${target.namespace}`;
  }
  return `the Kubernetes API answered ${status}${message ? `: ${message}` : e?.message ? `: ${e.message}` : ''}`;
}
