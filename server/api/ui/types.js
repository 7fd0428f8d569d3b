// The credential types and their form fields (API.md §3 and §10). A field
// is {key, label, kind}: key is the body member it fills ("secret" means
// secret.plain, "apiToken" apiToken.plain); kind is text, secret (a
// password input), area (a secret textarea) or check (a boolean).

export const TYPES = [
  {type: 'aws', label: 'AWS', fields: [
    {key: 'accountID', label: 'Access key ID', kind: 'text'},
    {key: 'secret', label: 'Secret access key', kind: 'secret'},
    {key: 'useAWSRole', label: 'Use IAM role', kind: 'check'},
    {key: 'roleArn', label: 'Role ARN', kind: 'text', hint: 'arn:aws:iam::123456789012:role/name'},
    {key: 'externalID', label: 'External ID', kind: 'text'},
    {key: 'useSTSRegionalEndpoint', label: 'Use STS regional endpoint', kind: 'check'},
    {key: 'region', label: 'Region', kind: 'text', hint: 'us-east-1'},
  ]},
  {type: 'azure', label: 'Azure', fields: [
    {key: 'secret', label: 'Service key', kind: 'area', hint: 'The JSON that az ad sp create-for-rbac prints'},
  ]},
  {type: 'gcp', label: 'GCP', fields: [
    {key: 'secret', label: 'Service account', kind: 'area', hint: 'A service-account key JSON, or leave empty and give an API token'},
    {key: 'apiToken', label: 'API token', kind: 'secret'},
  ]},
  {type: 'ibmCloud', label: 'IBM Cloud', fields: [
    {key: 'accountGUID', label: 'Account GUID', kind: 'text'},
    {key: 'secret', label: 'API key', kind: 'secret'},
  ]},
  {type: 'kubeconfig', label: 'Kubeconfig', fields: [
    {key: 'secret', label: 'Kubeconfig', kind: 'area'},
  ]},
  {type: 'basic', label: 'Basic (username and password)', fields: [
    {key: 'accountID', label: 'Username', kind: 'text'},
    {key: 'secret', label: 'Password', kind: 'secret'},
  ]},
  {type: 'apiToken', label: 'API token', fields: [
    {key: 'secret', label: 'Token', kind: 'secret'},
  ]},
  {type: 'certificate', label: 'Certificate', fields: [
    {key: 'secret', label: 'Certificate and key', kind: 'area', hint: 'A PEM certificate followed by its PEM private key'},
  ]},
];

export function typeInfo(type) {
  return TYPES.find((t) => t.type === type);
}

export function typeLabel(type) {
  return typeInfo(type)?.label || type || '';
}

/** Members a server derives or owns: never sent back on an edit. */
export const READ_ONLY = ['version', 'created', 'lastModified', 'owner', 'azureSPInfo', 'projectID',
  'kubeconfig', 'certificate', 'secret', 'apiToken'];
