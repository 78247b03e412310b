import * as ChildProcess from "node:child_process"
import * as Fs from "node:fs"
import * as Os from "node:os"
import * as Path from "node:path"

/** A certificate and its private key, PEM. */
export interface Pair {
  readonly certificate: string
  readonly key: string
}

/** @internal */
export interface TestCertificates {
  /** the test CA that issued `server` and `client` */
  readonly ca: string
  /** the https listeners' certificate, for 127.0.0.1 and localhost */
  readonly server: Pair
  /** a client certificate issued by the CA, subject `CN=machine-tls` */
  readonly client: Pair
  /** a self-signed client certificate, subject `CN=machine-self-signed` */
  readonly selfSigned: Pair
}

const ecKey = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"]

/**
 * A test CA and certificates made with the `openssl` CLI, once per process: valid for two days, never written
 * anywhere but a temporary directory that is removed at once.
 */
const generate = (): TestCertificates => {
  const dir = Fs.mkdtempSync(Path.join(Os.tmpdir(), "dev-identity-tls-"))
  const file = (name: string) => Path.join(dir, name)
  const openssl = (...args: Array<string>) => {
    const result = ChildProcess.spawnSync("openssl", args, { cwd: dir, encoding: "utf8" })
    if (result.status !== 0) {
      throw new Error(`dev-identity: openssl ${args[0]} failed (is the openssl CLI installed?): ${result.stderr}`)
    }
  }
  const read = (name: string) => Fs.readFileSync(file(name), "utf8")
  try {
    openssl(
      "req",
      "-x509",
      ...ecKey,
      "-keyout",
      "ca.key",
      "-out",
      "ca.pem",
      "-days",
      "2",
      "-subj",
      "/CN=dev-identity test CA"
    )
    const issue = (name: string, subject: string, extensions: string) => {
      Fs.writeFileSync(file(`${name}.ext`), extensions)
      openssl("req", ...ecKey, "-keyout", `${name}.key`, "-out", `${name}.csr`, "-subj", subject)
      openssl(
        "x509",
        "-req",
        "-in",
        `${name}.csr`,
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        `${name}.pem`,
        "-days",
        "2",
        "-extfile",
        `${name}.ext`
      )
      return { certificate: read(`${name}.pem`), key: read(`${name}.key`) }
    }
    const server = issue("server", "/CN=127.0.0.1", "subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    const client = issue("client", "/CN=machine-tls", "extendedKeyUsage=clientAuth\n")
    openssl(
      "req",
      "-x509",
      ...ecKey,
      "-keyout",
      "self.key",
      "-out",
      "self.pem",
      "-days",
      "2",
      "-subj",
      "/CN=machine-self-signed"
    )
    return { ca: read("ca.pem"), server, client, selfSigned: { certificate: read("self.pem"), key: read("self.key") } }
  } finally {
    Fs.rmSync(dir, { recursive: true, force: true })
  }
}

let made: TestCertificates | undefined

/** @internal */
export const testCertificates = (): TestCertificates => (made ??= generate())
