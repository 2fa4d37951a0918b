// The part of autocannon 8's API the benchmark uses (the package ships no types and adding
// @types/autocannon is not allowed). Shapes follow node_modules/autocannon/README.md.
declare module 'autocannon' {
  import type { EventEmitter } from 'node:events'

  namespace autocannon {
    interface RequestParams {
      method?: string
      path?: string
      headers?: Record<string, string>
      body?: string | Buffer
    }

    interface Request extends RequestParams {
      /** Called before each request is sent; returns the request to send (falsy: restart the sequence). */
      setupRequest?: (request: RequestParams & Record<string, unknown>, context: Record<string, unknown>) => RequestParams | undefined
      onResponse?: (status: number, body: string, context: Record<string, unknown>, headers: Record<string, string>) => void
    }

    interface Options {
      url: string
      connections?: number
      duration?: number
      amount?: number
      pipelining?: number
      timeout?: number
      method?: string
      headers?: Record<string, string>
      body?: string | Buffer
      requests?: Request[]
      idReplacement?: boolean
      title?: string
      bailout?: number
      excludeErrorStats?: boolean
      sampleInt?: number
    }

    interface Histogram {
      average: number
      mean: number
      stddev: number
      min: number
      max: number
      total: number
      p2_5: number
      p50: number
      p75: number
      p90: number
      p97_5: number
      p99: number
      p99_9: number
      p99_99: number
      p99_999: number
      sent?: number
    }

    interface Result {
      title?: string
      url: string
      connections: number
      pipelining: number
      duration: number
      errors: number
      timeouts: number
      mismatches: number
      non2xx: number
      '1xx': number
      '2xx': number
      '3xx': number
      '4xx': number
      '5xx': number
      statusCodeStats: Record<string, { count: number }>
      latency: Histogram
      requests: Histogram
      throughput: Histogram
      start: Date
      finish: Date
    }

    interface Instance extends EventEmitter {
      stop(): void
    }
  }

  function autocannon(opts: autocannon.Options, cb: (err: Error | null, result: autocannon.Result) => void): autocannon.Instance

  export = autocannon
}
