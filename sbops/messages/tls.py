"""The ingress TLS secret's findings (SB63xx): tls.secret and tls.certificate.

The certificate findings come from one judgement (sbops.probes.tls.certificate_findings) that the check,
the tls-secret fix and the installer's validation share: `subject` is "the certificate in <ns>/<name>" for
the check and "the certificate" for files; `crt`/`key` name the parts ("tls.crt" or "the certificate file")."""

from __future__ import annotations

from sbops.messages import define
from sbops.model import Reason, Status

SECRET, CERTIFICATE = "runbooks/tls.secret.md", "runbooks/tls.certificate.md"

# tls.secret
SECRET_PRESENT = define("SB6310", "TlsSecretPresent", Status.OK, "TLS secret {where} exists with tls.crt and tls.key",
                        SECRET, Reason.NONE)
SECRET_MISSING = define("SB6311", "TlsSecretMissing", Status.FAIL, "TLS secret {where} ({source}) does not exist",
                        SECRET, Reason.MISSING)
SECRET_ELSEWHERE = define("SB6312", "TlsSecretInWrongNamespace", Status.FAIL,
                          "TLS secret {secret} is in {found_in}, but the ingress gateway looks in {namespace}", SECRET,
                          Reason.WRONG_NAMESPACE)
SECRET_INCOMPLETE = define("SB6313", "TlsSecretIncomplete", Status.FAIL, "TLS secret {where} lacks {missing}", SECRET,
                           Reason.MISCONFIGURED)

# tls.certificate, most basic first (the order certificate_findings reports them in)
CERTIFICATE_VALID = define("SB6320", "CertificateValid", Status.OK,
                           "{subject} is valid until {expires}, matches its key{note}", CERTIFICATE, Reason.NONE)
CERTIFICATE_UNREADABLE = define("SB6321", "CertificateUnreadable", Status.FAIL, "{crt} {problem}", CERTIFICATE,
                                Reason.MISCONFIGURED)
KEY_UNREADABLE = define("SB6322", "PrivateKeyUnreadable", Status.FAIL, "{key} is not an unencrypted PEM private key",
                        CERTIFICATE, Reason.MISCONFIGURED)
CERTIFICATE_EXPIRED = define("SB6323", "CertificateExpired", Status.FAIL, "{subject} expired on {expired}",
                             CERTIFICATE, Reason.EXPIRED)
CERTIFICATE_NOT_YET_VALID = define("SB6324", "CertificateNotYetValid", Status.FAIL,
                                   "{subject} is not valid before {starts} UTC (check the clock)", CERTIFICATE,
                                   Reason.MISCONFIGURED)
CERTIFICATE_WRONG_DOMAIN = define("SB6325", "CertificateDoesNotCoverDomain", Status.FAIL,
                                  "{subject} does not cover {domain} (its names: {names})", CERTIFICATE,
                                  Reason.MISCONFIGURED)
KEY_MISMATCH = define("SB6326", "KeyDoesNotMatchCertificate", Status.FAIL,
                      "{key} is not the private key of {subject}", CERTIFICATE, Reason.MISCONFIGURED)
CHAIN_OUT_OF_ORDER = define("SB6327", "ChainOutOfOrder", Status.FAIL, "the chain of {subject} is out of order: {problem}",
                            CERTIFICATE, Reason.MISCONFIGURED)
CERTIFICATE_EXPIRING = define("SB6328", "CertificateExpiring", Status.WARN,
                              "{subject} expires in {days:.1f} days ({expires})", CERTIFICATE, Reason.EXPIRING)

# tls.renewal (certbot's lineage, its deploy hook and timer; judged by sbops.probes.acme.judge_renewal)
RENEWAL = "runbooks/tls.renewal.md"
RENEWAL_OK = define("SB6330", "AcmeRenewalReady", Status.OK,
                    "{where} holds certbot's live certificate of {lineage} (until {expires}); the deploy hook and "
                    "{timer} are in place", RENEWAL, Reason.NONE)
RENEWAL_NOT_ACME = define("SB6331", "CertificateNotFromAcme", Status.SKIP,
                          "the certificate in {where} was not issued through certbot here ({why})", RENEWAL,
                          Reason.NOT_APPLICABLE)
RENEWAL_UNREADABLE = define("SB6332", "AcmeLineageUnreadable", Status.SKIP,
                            "cannot read certbot's files under {config_dir}: {problem}", RENEWAL, Reason.NO_ACCESS)
RENEWAL_NOT_DEPLOYED = define("SB6333", "RenewalNotDeployed", Status.FAIL,
                              "{where} holds an earlier certificate of {lineage} (until {secret_expires}) than the "
                              "live one (until {live_expires}): a renewal never reached the cluster", RENEWAL,
                              Reason.FAILED)
HOOK_MISSING = define("SB6334", "DeployHookMissing", Status.FAIL,
                      "certbot's deploy hook {hook} does not exist: a renewal will not reach {where}", RENEWAL,
                      Reason.MISSING)
HOOK_NOT_EXECUTABLE = define("SB6335", "DeployHookNotExecutable", Status.FAIL,
                             "certbot's deploy hook {hook} is not executable: certbot skips it, so a renewal will "
                             "not reach {where}", RENEWAL, Reason.MISCONFIGURED)
TIMER_DISABLED = define("SB6336", "RenewalTimerDisabled", Status.FAIL,
                        "{timer} is {state}: nothing runs `certbot renew`", RENEWAL, Reason.NOT_RUNNING)
TIMER_UNKNOWN = define("SB6337", "RenewalTimerUnknown", Status.SKIP,
                       "cannot tell whether {timer} is enabled ({problem}); the secret and the hook are in place",
                       RENEWAL, Reason.NO_ACCESS)
