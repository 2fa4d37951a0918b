import { writeFileSync } from 'node:fs'
import { configurationMarkdown, errorsMarkdown } from '../src/docs/generate.ts'

writeFileSync(new URL('../docs/errors.md', import.meta.url), errorsMarkdown())
writeFileSync(new URL('../docs/configuration.md', import.meta.url), configurationMarkdown())
console.log('wrote docs/errors.md and docs/configuration.md')
