/**
 * A limiter's local state, kept once per node as APISIX's shared dict keeps
 * it for nginx's workers: until init() runs (and with one serving process)
 * the calls stay in this process; with several worker processes the primary
 * holds the state and each call from a worker is one IPC round trip, which
 * fails when the primary does not answer within `answerMs`.
 */
import type { MaybePromise, OwnedState, PluginCleanup, PluginInitContext } from '../../core/plugin/index.js';

export class PerNode<Req, Res> {
  private target: Pick<OwnedState<Req, Res>, 'call'>;

  /** `local` must be synchronous and the same code in every process. */
  constructor(
    private readonly name: string,
    private readonly local: (req: Req) => Res,
    private readonly answerMs: number,
  ) {
    this.target = { call: local };
  }

  call(req: Req): MaybePromise<Res> {
    return this.target.call(req);
  }

  /** From the plugin's init(): joins the node's shared state. */
  init(ctx: PluginInitContext): PluginCleanup {
    const owned = ctx.shared.owned<Req, Res>(this.name, this.local, this.answerMs);
    this.target = owned;
    return () => {
      owned.close();
      if (this.target === owned) this.target = { call: this.local };
    };
  }
}
