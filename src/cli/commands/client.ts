import { loadConfig } from '../../config/load.ts'
import { checkClientSpec, hashClientSecret, newClientId, newClientSecret } from '../../oauth/clients.ts'
import { createStore } from '../../store/kysely-store.ts'
import { table } from '../table.ts'
import type { CommandIo } from './migrate.ts'

export interface ClientOptions {
  readonly scope?: string
  readonly grant: readonly string[]
  readonly json: boolean
}

/** `client create|list|delete`. Exit codes: 0 ok, 1 not found, 2 usage. */
export async function clientCommand(
  args: readonly string[],
  overrides: Record<string, string>,
  options: ClientOptions,
  io: CommandIo,
): Promise<number> {
  const [sub, arg] = args
  if (!(sub === 'create' && arg !== undefined) && sub !== 'list' && !(sub === 'delete' && arg !== undefined)) {
    io.err('usage: rest-auth client create NAME [--grant G]... [--scope "a b"] | client list | client delete CLIENT_ID')
    return 2
  }
  const { config } = loadConfig({ overrides })
  const store = createStore(config.databaseUrl)
  try {
    await store.migrate()
    if (sub === 'create') {
      const spec = {
        name: arg as string,
        scopes: (options.scope ?? '').split(' ').filter((s) => s !== ''),
        grantTypes: options.grant.length === 0 ? ['client_credentials'] : [...new Set(options.grant)],
      }
      try {
        checkClientSpec(spec)
      } catch (error) {
        io.err(error instanceof Error ? error.message : String(error))
        return 2
      }
      const clientId = newClientId()
      const secret = newClientSecret()
      await store.createClient({ clientId, secretHash: hashClientSecret(secret), createdAt: Date.now(), ...spec })
      if (options.json) io.out(JSON.stringify({ client_id: clientId, client_secret: secret, ...spec }))
      else {
        io.out(`client_id:     ${clientId}`)
        io.out(`client_secret: ${secret}`)
        io.out('The secret is shown once and stored only as a hash: keep it now.')
      }
      return 0
    }
    if (sub === 'delete') {
      const deleted = await store.deleteClient(arg as string)
      if (!deleted) {
        io.err(`no client ${arg as string}`)
        return 1
      }
      io.out(options.json ? JSON.stringify({ deleted: arg }) : `deleted ${arg as string}`)
      return 0
    }
    const clients = await store.listClients()
    if (options.json) {
      io.out(JSON.stringify({ clients: clients.map((c) => ({ client_id: c.clientId, name: c.name, scopes: c.scopes, grantTypes: c.grantTypes, createdAt: new Date(c.createdAt).toISOString() })) }))
    } else {
      io.out(table(['CLIENT_ID', 'NAME', 'GRANTS', 'SCOPES', 'CREATED'], clients.map((c) => [c.clientId, c.name, c.grantTypes.join(','), c.scopes.join(' '), new Date(c.createdAt).toISOString()])))
    }
    return 0
  } finally {
    await store.close()
  }
}
