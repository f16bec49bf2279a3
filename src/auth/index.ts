export { parseWWWAuthenticate, InvalidChallengeError, type Challenge } from './challenge.js';
export {
  loadDockerConfig,
  parseDockerConfig,
  normalizeRegistry,
  registryKey,
  DockerConfigCredentials,
  DOCKER_HUB,
  DOCKER_HUB_SERVER_URL,
  type AuthEntry,
  type Credential,
  type CredentialSource,
  type LoadDockerConfigOptions,
  type ParsedDockerConfig,
} from './dockerconfig.js';
export {
  CredentialHelper,
  findExecutable,
  HELPER_PREFIX,
  IDENTITY_TOKEN_USERNAME,
  type CredentialHelperOptions,
} from './credhelper.js';
