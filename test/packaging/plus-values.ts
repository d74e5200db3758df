// The smallest values that render the chart's Plus flavor: an NGINX Plus image (the schema
// requires one) and license.jwt mounted from a Secret where nginx.plus.mgmt.licenseToken
// points (the chart refuses to render without it). Tests add their own nginx values on top;
// their extraVolumes/extraVolumeMounts come after the license's.
export const PLUS_LICENSE_DIR = '/etc/apigw-plus/license';

export interface PlusNginxValues {
  readonly extraVolumes?: readonly unknown[];
  readonly extraVolumeMounts?: readonly unknown[];
  readonly plus?: Readonly<Record<string, unknown>>;
  readonly [key: string]: unknown;
}

export function plusValues(nginx: PlusNginxValues = {}): Record<string, unknown> {
  const { extraVolumes = [], extraVolumeMounts = [], plus = {}, ...rest } = nginx;
  return {
    nginx: {
      flavor: 'plus',
      ...rest,
      extraVolumes: [{ name: 'plus-license', secret: { secretName: 'nginx-plus-license' } }, ...extraVolumes],
      extraVolumeMounts: [{ name: 'plus-license', mountPath: PLUS_LICENSE_DIR, readOnly: true }, ...extraVolumeMounts],
      plus: { image: { repository: 'registry.example.com/nginx-plus', tag: 'r35' }, ...plus },
    },
  };
}
