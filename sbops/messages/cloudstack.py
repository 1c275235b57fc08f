"""The CloudStack layer's findings (SB80xx): cloudstack.reachable SB8001-SB8009, cloudstack.api-keys
SB8010-SB8029, cloudstack.simulator SB8030-SB8039."""

from __future__ import annotations

from sbops.messages import define
from sbops.model import Reason, Status

REACHABLE = "runbooks/cloudstack.reachable.md"
KEYS = "runbooks/cloudstack.api-keys.md"
SIMULATOR = "runbooks/cloudstack.simulator.md"

# cloudstack.reachable
ANSWERS = define("SB8001", "CloudStackAnswers", Status.OK, "{api} answers listCapabilities{version}", REACHABLE,
                 Reason.NONE)
NOT_CONFIGURED = define("SB8002", "CloudStackNotConfigured", Status.SKIP,
                        "no CloudStack is configured (cloudstack.mode {mode}: no CLOUDSTACK section in the credentials "
                        "file and no cloudstack.url)", REACHABLE, Reason.NOT_APPLICABLE)
NO_URL = define("SB8003", "CloudStackUrlMissing", Status.FAIL,
                "cloudstack.mode is {mode} but no URL is known (cloudstack.url, or URL in the credentials file's "
                "CloudStack section)", REACHABLE, Reason.MISCONFIGURED)
NO_ANSWER = define("SB8004", "CloudStackNoAnswer", Status.FAIL, "{api} does not answer: {error}", REACHABLE)
NOT_CLOUDSTACK = define("SB8005", "CloudStackNotCloudStack", Status.FAIL,
                        "{api} answers HTTP {status} ({content_type}), not CloudStack's JSON: is the URL the "
                        "CloudStack UI's (http://HOST:8080/client)?", REACHABLE, Reason.MISCONFIGURED)

# cloudstack.api-keys
KEYS_WORK = define("SB8010", "CloudStackKeysWork", Status.OK,
                   "a request signed with the API key and secret key succeeds at {api}", KEYS, Reason.NONE)
KEYS_MISSING = define("SB8011", "CloudStackKeysMissing", Status.FAIL,
                      "no {missing} for CloudStack (cloudstack.api_key / cloudstack.secret_key, or the credentials "
                      "file's StackBill User)", KEYS, Reason.MISSING)
KEYS_NO_ANSWER = define("SB8012", "CloudStackKeysNoAnswer", Status.FAIL, "{api} does not answer: {error}", KEYS)
SIGNATURE_REJECTED = define("SB8013", "CloudStackSignatureRejected", Status.FAIL,
                            "the API key belongs to {username} (account {account}), but CloudStack rejects the "
                            "signature: the secret key is wrong", KEYS, Reason.AUTH_FAILED)
KEY_UNKNOWN = define("SB8014", "CloudStackApiKeyUnknown", Status.FAIL,
                     "no CloudStack user has this API key (regenerated or deleted){user_note}", KEYS, Reason.MISSING)
USER_DISABLED = define("SB8015", "CloudStackUserDisabled", Status.FAIL,
                       "the API key belongs to {username} (account {account}), which is {state}: CloudStack refuses "
                       "its requests", KEYS, Reason.ACCESS_DENIED)
CLOCK_SKEW = define("SB8016", "CloudStackClockSkew", Status.FAIL,
                    "CloudStack's clock is {skew:.0f}s ahead of this host's: signed requests expire "
                    "(after {lifetime:g}s) before it sees them; set both clocks right (NTP)", KEYS,
                    Reason.MISCONFIGURED)
REJECTED_UNEXPLAINED = define("SB8017", "CloudStackKeysRejected", Status.FAIL,
                              "CloudStack rejects the signed request (HTTP 401): a wrong secret key, an unknown API "
                              "key or a disabled user; sbops cannot tell which without an admin login ({why})",
                              KEYS, Reason.AUTH_FAILED)
KEYS_ERROR = define("SB8018", "CloudStackKeysError", Status.FAIL,
                    "CloudStack answers the signed request with error {code}: {text}", KEYS, Reason.MISCONFIGURED)
KEYS_NOT_APPLICABLE = define("SB8019", "CloudStackKeysNotConfigured", Status.SKIP,
                             "no CloudStack is configured (cloudstack.mode {mode})", KEYS, Reason.NOT_APPLICABLE)

# cloudstack.simulator
CONTAINER_RUNNING = define("SB8030", "CloudStackSimulatorRunning", Status.OK,
                           "container {name} is running and publishes {published}", SIMULATOR, Reason.NONE)
NOT_SIMULATOR = define("SB8031", "CloudStackNotSimulator", Status.SKIP,
                       "cloudstack.mode is {mode}: no simulator container to check", SIMULATOR, Reason.NOT_APPLICABLE)
PODMAN_UNUSABLE = define("SB8032", "CloudStackPodmanUnusable", Status.SKIP, "cannot ask podman: {error}", SIMULATOR,
                         Reason.NO_ACCESS)
CONTAINER_MISSING = define("SB8033", "CloudStackSimulatorMissing", Status.FAIL,
                           "there is no container {name}: the simulator, its users and their keys are gone", SIMULATOR,
                           Reason.MISSING)
CONTAINER_STOPPED = define("SB8034", "CloudStackSimulatorStopped", Status.FAIL,
                           "container {name} is {state}{exit}: the CloudStack API is down", SIMULATOR,
                           Reason.NOT_RUNNING)
PORT_NOT_PUBLISHED = define("SB8035", "CloudStackSimulatorPortNotPublished", Status.FAIL,
                            "container {name} publishes {published}, not host port {port} to {container_port}: the "
                            "API is not reachable at the recorded URL", SIMULATOR, Reason.MISCONFIGURED)
